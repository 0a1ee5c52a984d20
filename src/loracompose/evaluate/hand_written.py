"""Hand-written labelled texts outside the packaged corpora, to measure judges where no module learnt.

`data/handwritten_sentiment.jsonl`: 60 sentences (30 positive, 30 negative) written for
this project about everyday things — food, travel, work, weather, health, products,
school, sport, neighbours, pets, … — one of each label per domain, none about films.
They were written plainly, as a person would report an experience, without aiming at
any judge's vocabulary. The file is small on purpose: it measures whether a judge
that learnt from reviews or tweets carries over to ordinary prose, with an interval
wide enough to say so (n = 60: ±0.09 at 0.85).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
FILES = {"sentiment": DATA / "handwritten_sentiment.jsonl"}


@functools.lru_cache(maxsize=None)
def hand_written(attribute: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of the attribute's hand-written set; empty lists where there is none."""
    path = FILES.get(attribute)
    if path is None:
        return [], []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def hand_written_hash(attribute: str) -> str | None:
    path = FILES.get(attribute)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None else None
