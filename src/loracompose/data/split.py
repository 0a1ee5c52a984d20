"""Deterministic train/validation/test/judge split by a hash of each text.

The `judge` split is held out for the attribute judges (`loracompose.evaluate`):
modules train on `train` only, judges on `judge` only, so a judge never scores
a module by the texts that module learnt from. Both are measured on `test`.

A text's split depends only on the text and the split fractions: not on file
order, machine, run, or which other texts are present (adding data never moves
an existing text to another split).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from loracompose.errors import LoraComposeError

SPLITS = ("train", "validation", "test", "judge")
_SALT = b"loracompose-split-v1\x00"


@dataclass(frozen=True)
class SplitSizes:
    """Fractions of each dataset held out; the rest is `train`."""

    validation: float = 0.05
    test: float = 0.10
    judge: float = 0.30  # held out for the attribute judges, never seen by a module

    def __post_init__(self):
        fractions = (self.validation, self.test, self.judge)
        if not (all(0 <= f < 1 for f in fractions) and sum(fractions) < 1):
            raise LoraComposeError(
                f"split sizes validation={self.validation}, test={self.test}, judge={self.judge} are invalid; "
                "each must be a fraction in [0, 1) and together below 1"
            )


def text_position(text: str) -> float:
    """Map a text to a uniform number in [0, 1) with SHA-256 (stable across machines and runs)."""
    digest = hashlib.sha256(_SALT + text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(texts: pd.Series, sizes: SplitSizes) -> pd.Series:
    """`test` below sizes.test, `validation` up to test+validation, `judge` up to
    test+validation+judge, `train` above. Test and validation do not move when the
    judge fraction changes."""
    position = texts.map(text_position)
    split = pd.Series("train", index=texts.index)
    split[position < sizes.test + sizes.validation + sizes.judge] = "judge"
    split[position < sizes.test + sizes.validation] = "validation"
    split[position < sizes.test] = "test"
    return split
