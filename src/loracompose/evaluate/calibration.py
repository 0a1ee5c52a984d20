"""Where "0.5" is: the sentiment panel's verdicts on text that steers nowhere.

    human-written neutral text   the `tweets` test split's tweets labelled neutral (a seeded
                                 sample of 300) and the openings (first 40 words of the body)
                                 of every BBC test article
    a base model's continuations the vote shares of a baseline generations file (`--baseline`),
                                 e.g. the base model's continuations of the same prompts

For each set: n and the share of texts whose majority vote is each label (and the judges'
mean probability of each label). A panel that called neutral text positive half the time
would put 0.5 where a reader expects it; the measured shares show how far it is from that.
Judged like generations: the whole text (there is no prompt). Cached per panel under
`cache_dir()/calibration/` (a panel with user judges is not cached).
"""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np

from loracompose.evaluate.ensemble import Verdicts
from loracompose.data import load_attribute_dataset
from loracompose.paths import cache_dir, write_text_atomic

ATTRIBUTE = "sentiment"
TWEETS_SAMPLE = 300
OPENING_WORDS = 40  # about the length of a 40-token generation
VERSION = 2  # 2: only the panel's voting judges vote


def neutral_texts() -> dict[str, list[str]]:
    """The human-written neutral sets: {name: texts} (test splits only)."""
    tweets = load_attribute_dataset("tweets").texts("test", "neutral")
    tweets = random.Random("calibration:tweets").sample(tweets, min(TWEETS_SAMPLE, len(tweets)))
    bbc = [" ".join(t.partition("\n\n")[2].split()[:OPENING_WORDS]) for t in load_attribute_dataset("bbc").texts("test")]
    return {"neutral tweets (tweets test split)": tweets, "BBC article openings (bbc test split)": bbc}


def vote_shares(panel, texts: list[str]) -> dict:
    """n, the share of texts whose majority vote is each label, and the mean probability of each label."""
    probabilities = np.stack([judge.predict_proba(texts) for judge in panel.judges])  # (J, n, L)
    voting = getattr(panel, "voting", None)  # the vote is the panel's voting judges' alone, as in evaluate
    verdicts = Verdicts(panel.labels, [j.name for j in panel.judges], probabilities, voting)
    return {"n": len(texts),
            "vote_share": {label: float(verdicts.hard_hits(label).mean()) for label in panel.labels},
            "mean_probability": {label: float(verdicts.soft_scores(label).mean()) for label in panel.labels}}


def _cache_file(panel):
    directory = (panel.provenance or {}).get("directory")
    if not directory or any(j.describe().get("kind") == "hf" for j in panel.judges):
        return None
    judges = [j.name for j in panel.judges]
    key = hashlib.sha256(json.dumps([str(directory), judges, getattr(panel, "voting", None), VERSION]).encode()).hexdigest()
    return cache_dir() / "calibration" / f"{ATTRIBUTE}-{key[:16]}.json"


def calibration(panels: dict, options=None) -> dict | None:
    """The sentiment panel's vote shares on the human-written neutral sets (None without a sentiment panel)."""
    panel = panels.get(ATTRIBUTE)
    if panel is None or not panel.judges or "positive" not in panel.labels:
        return None
    cached = _cache_file(panel)
    if cached is not None and cached.is_file():
        return json.loads(cached.read_text())
    for judge in panel.judges:
        if hasattr(judge, "progress"):
            judge.progress = bool(options and options.progress)
    result = {"attribute": ATTRIBUTE, "judge_panel": (panel.provenance or {}).get("directory"),
              "sets": {name: vote_shares(panel, texts) for name, texts in neutral_texts().items()}}
    if cached is not None:
        write_text_atomic(cached, json.dumps(result, indent=2) + "\n")
    return result


def format_calibration(calibration: dict | None, baselines: dict | None = None, label: str = "positive") -> str | None:
    """One line: the share of each neutral set (and baseline file) whose vote is `label`."""
    parts = []
    for name, result in ((calibration or {}).get("sets") or {}).items():
        parts.append(f"{name} {result['vote_share'][label]:.3f} (n={result['n']})")
    for name, result in (baselines or {}).items():
        parts.append(f"{name} {result['vote_share'][label]:.3f} (n={result['n']})")
    if not parts:
        return None
    return f"calibration — share the {ATTRIBUTE} vote calls {label}: " + "; ".join(parts)
