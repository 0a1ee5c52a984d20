"""Text cleaning shared by every dataset: HTML breaks, entities, bad bytes, whitespace, duplicates."""

from __future__ import annotations

import html
import re

import pandas as pd

_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# Control characters other than tab and newline, and U+FFFD left by undecodable bytes.
_JUNK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Normalise one text: `<br />` → newline, HTML entities decoded, junk bytes and
    control characters dropped, runs of spaces collapsed, at most one blank line."""
    text = _BR.sub("\n", text)
    text = html.unescape(text)
    text = _JUNK.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def clean_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Clean `text`, drop empty texts and exact duplicates, independently of row order.

    A text that occurs with one label keeps one copy; a text that occurs with
    several labels is ambiguous and dropped entirely. The result is sorted by
    (label, text) so nothing downstream depends on the order of the input file.
    """
    frame = frame.assign(text=frame["text"].astype(str).map(clean_text), label=frame["label"].astype(str))
    frame = frame[frame["text"].str.len() > 0]
    labels_per_text = frame.groupby("text")["label"].nunique()
    ambiguous = set(labels_per_text[labels_per_text > 1].index)
    frame = frame[~frame["text"].isin(ambiguous)].drop_duplicates(subset=["text"])
    return frame.sort_values(["label", "text"], kind="stable").reset_index(drop=True)
