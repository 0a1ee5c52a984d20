"""Prompt sets: the one place that names them.

    pplm           the 15 PPLM sentiment prompts (Dathathri et al., 2020), reused by DExperts
    pplm35         the 35 prompts of the study's authors' comparison (arXiv 2605.12395): PPLM's 15
                   sentiment prompts + its 20 topic prompts
    neutral        35 openings of BBC News articles from the test split (see `neutral_prompts`)
    heldout:NAME   the opening words of a seeded sample of dataset NAME's test split (all labels)
    a file         one prompt a line (.txt) or JSONL rows with a `prompt` field

Every built-in set draws from test splits only: the split is the same hash split
that training and the judges use, so no prompt opens a text a module trained on.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

from loracompose.data import BUILTIN_DATASETS, load_attribute_dataset
from loracompose.errors import LoraComposeError

# The 15 sentiment ("discriminator") prompts of PPLM (Dathathri et al., 2020), reused by DExperts and
# by the study.
PPLM_PROMPTS = [
    "Once upon a time", "The book", "The chicken", "The city", "The country", "The horse", "The lake",
    "The last time", "The movie", "The painting", "The pizza", "The potato", "The president of the country",
    "The road", "The year is 1910.",
]
# PPLM's 20 topic (bag-of-words) prompts, as the study's authors use them: copied from
# github.com/michelalorandi/comparative_study_of_ctg, scripts/src/models/multi_ctg/generate_multi.py
# (`--pre_tokens`, commit c02b845), whose results name them PPLM-Bow_0…19 beside PPLM-Discrim_0…14.
PPLM_TOPIC_PROMPTS = [
    "In summary", "This essay discusses", "Views on", "The connection", "Foundational to this is",
    "To review,", "In brief,", "An illustration of", "Furthermore,", "The central theme", "To conclude,",
    "The key aspect", "Prior to this", "Emphasised are", "To summarise", "The relationship",
    "More importantly,", "It has been shown", "The issue focused on", "In this essay",
]
PPLM35_PROMPTS = PPLM_PROMPTS + PPLM_TOPIC_PROMPTS

NEUTRAL_DATASET = "bbc"
NEUTRAL_PER_TOPIC = 7
NEUTRAL_WORDS = 6
BUILTIN_SETS = ("pplm", "pplm35", "neutral")
HELDOUT_PREFIX = "heldout:"


def _body_opening(article: str, words: int) -> str:
    """The first `words` words of a BBC article's body (its text after the title line)."""
    _, _, body = article.partition("\n\n")
    return " ".join((body or article).split()[:words])


@functools.lru_cache(maxsize=None)
def neutral_prompts(per_topic: int = NEUTRAL_PER_TOPIC, words: int = NEUTRAL_WORDS, seed: int = 0) -> tuple[str, ...]:
    """`per_topic` openings per BBC topic (5 topics: 35 by default) of the test split's articles.

    How it was chosen: news openings are the closest thing in the packaged corpora to the
    "neutral prompts" of DExperts (OpenWebText sentence starts). Each prompt is the first 6
    words of an article's body (not its headline), taken in a seeded order from the test
    split, equally many per topic, and kept only when the VADER lexicon finds no sentiment
    in it (compound score 0) — a rule fixed before any generation was judged, and independent
    of the judge panel, which is not used to pick prompts.

    What it gives (measured with the command in the README's evaluation section): the share of
    the base model's continuations that the sentiment panel's majority vote calls positive is
    reported there beside pplm and pplm35; on SmolLM2-135M-Instruct it is nearer 0.5 than on
    the PPLM prompts, whose fairy-tale and food openings invite positive continuations.
    """
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    dataset = load_attribute_dataset(NEUTRAL_DATASET)
    vader = SentimentIntensityAnalyzer()
    prompts: list[str] = []
    for topic in dataset.labels:
        texts = dataset.texts("test", topic)
        kept: list[str] = []
        for i in random.Random(f"{seed}:neutral:{topic}").sample(range(len(texts)), len(texts)):
            opening = _body_opening(texts[i], words)
            if opening and opening not in kept and vader.polarity_scores(opening)["compound"] == 0:
                kept.append(opening)
            if len(kept) == per_topic:
                break
        prompts += kept
    return tuple(prompts)


@functools.lru_cache(maxsize=None)
def heldout_prompts(dataset: str, n: int, words: int, seed: int = 0) -> tuple[str, ...]:
    """`n` distinct openings of `words` words from the dataset's test split, in a seeded order."""
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


def accepted() -> str:
    return f"{', '.join(BUILTIN_SETS)}, {HELDOUT_PREFIX}DATASET, or a prompt file (.txt or .jsonl)"


def check_prompt_set(spec: str) -> None:
    """Raise a LoraComposeError naming what is accepted unless `spec` names a prompt set."""
    if spec in BUILTIN_SETS:
        return
    if spec.startswith(HELDOUT_PREFIX):
        name = spec[len(HELDOUT_PREFIX):]
        if name not in BUILTIN_DATASETS:
            raise LoraComposeError(f"unknown dataset {name!r} in held-out prompt set {spec!r}; accepted: "
                                   f"{', '.join(BUILTIN_DATASETS)}")
        return
    if not Path(spec).is_file():
        raise LoraComposeError(f"unknown prompt set {spec!r} (not a built-in set, nor an existing file); "
                               f"accepted: {accepted()}")


def _read_file(path: Path) -> list[str]:
    if path.suffix == ".jsonl":
        try:
            prompts = [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise LoraComposeError(f"prompt file '{path}': every line must be a JSON object with 'prompt'") from exc
    else:
        prompts = [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise LoraComposeError(f"prompt file '{path}' holds no prompts")
    return prompts


def load_prompts(spec: str, *, heldout_n: int = 15, heldout_words: int = 4, limit: int | None = None) -> list[str]:
    """The prompts of a built-in set, a held-out set or a file (see the module docstring); the first `limit`
    of them when given (an experiment spec's `max_prompts`)."""
    prompts = _load(spec, heldout_n, heldout_words)
    return prompts[:limit] if limit else prompts


def _load(spec: str, heldout_n: int, heldout_words: int) -> list[str]:
    check_prompt_set(spec)
    if spec == "pplm":
        return list(PPLM_PROMPTS)
    if spec == "pplm35":
        return list(PPLM35_PROMPTS)
    if spec == "neutral":
        return list(neutral_prompts())
    if spec.startswith(HELDOUT_PREFIX):
        return list(heldout_prompts(spec[len(HELDOUT_PREFIX):], heldout_n, heldout_words))
    return _read_file(Path(spec))
