"""Deterministic train/validation/test split by a hash of each text.

A text's split depends only on the text and the split fractions: not on file
order, machine, run, or which other texts are present (adding data never moves
an existing text to another split).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from loracompose.errors import LoraComposeError

SPLITS = ("train", "validation", "test")
_SALT = b"loracompose-split-v1\x00"


@dataclass(frozen=True)
class SplitSizes:
    """Fractions of each dataset held out; the rest is `train`."""

    validation: float = 0.05
    test: float = 0.10

    def __post_init__(self):
        if not (0 <= self.validation < 1 and 0 <= self.test < 1 and self.validation + self.test < 1):
            raise LoraComposeError(
                f"split sizes validation={self.validation}, test={self.test} are invalid; "
                "each must be a fraction in [0, 1) and together below 1"
            )


def text_position(text: str) -> float:
    """Map a text to a uniform number in [0, 1) with SHA-256 (stable across machines and runs)."""
    digest = hashlib.sha256(_SALT + text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(texts: pd.Series, sizes: SplitSizes) -> pd.Series:
    """`test` below sizes.test, `validation` up to test+validation, `train` above."""
    position = texts.map(text_position)
    split = pd.Series("train", index=texts.index)
    split[position < sizes.test + sizes.validation] = "validation"
    split[position < sizes.test] = "test"
    return split
