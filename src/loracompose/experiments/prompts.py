"""Prompt sets in experiment specs: the sets of `loracompose.prompts`, checked with the spec field's name.

    pplm, pplm35, neutral   built-in sets (see loracompose.prompts)
    heldout:NAME            the opening `heldout.words` words of `heldout.prompts` texts of dataset
                            NAME's test split (all labels), in a seeded order — a fixed,
                            reproducible list; `heldout` alone means one such set per task dataset
    a file                  one prompt a line (.txt) or JSONL with a `prompt` field
"""

from __future__ import annotations

from loracompose.errors import LoraComposeError
from loracompose.prompts import heldout_prompts, load_prompts  # noqa: F401  (heldout_prompts: re-exported)


def check_prompt_set(entry: str, path: str) -> None:
    from loracompose.experiments.spec import _fail
    from loracompose.prompts import check_prompt_set as check

    try:
        check(entry)
    except LoraComposeError as exc:
        raise _fail(path, f"{exc}; in a spec also 'heldout' (one held-out set per task dataset)") from None


def load_prompt_set(entry: str, *, heldout_n: int, heldout_words: int, limit: int | None = None) -> list[str]:
    prompts = load_prompts(entry, heldout_n=heldout_n, heldout_words=heldout_words)
    return prompts[:limit] if limit else prompts
