"""Prompt sets: the PPLM prompts, held-out openings of a dataset's test split, or a file.

    pplm           the 15 PPLM prompts (Dathathri et al., 2020)
    heldout:NAME   the opening `words` words of `n` texts of dataset NAME's test split
                   (all labels), drawn by a seeded sample from the texts in sorted
                   order — so "the IMDb test set" is a fixed, reproducible list
    a file         one prompt a line (.txt) or JSONL with a `prompt` field

The test split is the same hash split that training and the judges use, so no
held-out prompt opens a text a module was trained on.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

from loracompose.errors import LoraComposeError


def check_prompt_set(entry: str, path: str) -> None:
    from loracompose.data import BUILTIN_DATASETS
    from loracompose.experiments.spec import _fail

    if entry == "pplm":
        return
    if entry.startswith("heldout:"):
        name = entry.split(":", 1)[1]
        if name not in BUILTIN_DATASETS:
            raise _fail(path, f"unknown dataset {name!r} in held-out prompt set; accepted: "
                              f"{', '.join(BUILTIN_DATASETS)}")
        return
    if not Path(entry).is_file():
        raise _fail(path, f"unknown prompt set {entry!r}; accepted: pplm, heldout, heldout:DATASET, "
                          "or a prompt file (.txt or .jsonl)")


@functools.lru_cache(maxsize=None)
def heldout_prompts(dataset: str, n: int, words: int, seed: int = 0) -> tuple[str, ...]:
    """`n` distinct openings of `words` words from the dataset's test split."""
    from loracompose.data import load_attribute_dataset

    texts = load_attribute_dataset(dataset).texts("test")
    order = random.Random(f"{seed}:heldout:{dataset}").sample(range(len(texts)), len(texts))
    openings: list[str] = []
    for i in order:
        opening = " ".join(texts[i].split()[:words])
        if opening and opening not in openings:
            openings.append(opening)
        if len(openings) == n:
            break
    if not openings:
        raise LoraComposeError(f"dataset '{dataset}' has no test texts to make held-out prompts from")
    return tuple(openings)


def load_prompt_set(entry: str, *, heldout_n: int, heldout_words: int, limit: int | None = None) -> list[str]:
    from loracompose.generate import load_prompts

    if entry.startswith("heldout:"):
        prompts = list(heldout_prompts(entry.split(":", 1)[1], heldout_n, heldout_words))
    else:
        prompts = load_prompts(entry)
    return prompts[:limit] if limit else prompts
