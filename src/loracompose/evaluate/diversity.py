"""Diversity of generated text: distinct-n across samples and repeated n-grams within a text.

Texts are split into lower-cased words and punctuation marks (`\\w+|[^\\w\\s]`).

distinct-n (Li et al., 2016), computed per prompt over the pooled continuations
of that prompt, then averaged over prompts (so a prompt with more samples does
not weigh more):

    distinct-n(prompt) = |{distinct n-grams}| / |n-grams|     (over all its samples)
    distinct-n         = mean over prompts that have at least one n-gram

repeated-n is the share of n-grams in a text that repeat an n-gram seen earlier
in the same text, pooled over texts (weighted by n-grams, like rep-n of Welleck
et al., 2020):

    repeated-n = Σ_t (|n-grams of t| − |distinct n-grams of t|) / Σ_t |n-grams of t|

A degenerate loop ("the the the …") has repeated-n near 1; varied text near 0.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

_WORD = re.compile(r"\w+|[^\w\s]")

DISTINCT_N = (1, 2, 3)
REPEATED_N = (2, 3, 4)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: list[str], n: int) -> tuple[int, int]:
    """(distinct n-grams, all n-grams) over the pooled `texts`."""
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)), len(grams)


def repeated_n(texts: list[str], n: int) -> float | None:
    """Share of n-grams that repeat an earlier n-gram of the same text; None without n-grams."""
    total = repeats = 0
    for text in texts:
        grams = ngrams(words(text), n)
        total += len(grams)
        repeats += len(grams) - len(set(grams))
    return repeats / total if total else None


@dataclass(frozen=True)
class Diversity:
    distinct: dict[int, float | None]  # n → mean over prompts of distinct-n
    repeated: dict[int, float | None]  # n → pooled share of repeated n-grams within a text
    prompts: int  # prompts averaged over

    def as_dict(self) -> dict:
        return {
            **{f"distinct_{n}": v for n, v in self.distinct.items()},
            **{f"repeated_{n}": v for n, v in self.repeated.items()},
            "prompts": self.prompts,
        }


def diversity(prompts: list[str], texts: list[str]) -> Diversity:
    """distinct-n per prompt averaged over prompts, and repeated-n pooled over texts."""
    by_prompt: dict[str, list[str]] = defaultdict(list)
    for prompt, text in zip(prompts, texts, strict=True):
        by_prompt[prompt].append(text)
    distinct: dict[int, float | None] = {}
    for n in DISTINCT_N:
        shares = []
        for group in by_prompt.values():
            unique, total = distinct_n(group, n)
            if total:
                shares.append(unique / total)
        distinct[n] = sum(shares) / len(shares) if shares else None
    repeated = {n: repeated_n(texts, n) for n in REPEATED_N}
    return Diversity(distinct, repeated, len(by_prompt))
