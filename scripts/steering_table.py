"""The README's steering tables from the metrics `scripts/measure_steering.sh` writes.

    python scripts/steering_table.py [runs/steering] [runs/steering-curve]

Prints Markdown: the sentiment systems in both directions against the base (share
judged on target with its 95% interval over prompts, perplexity under gemma3-270m
and distinct-2, each with its ratio to the base's), then each topic and the
positive + sport joint target. Every figure is read from a metrics JSON, none typed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SENTIMENT = [("contrast-s1", "contrast, S = 1"), ("contrast-s2", "**contrast, S = 2 (default)**"),
             ("contrast-s3", "contrast, S = 3"), ("expert-s1", "expert alone, S = 1"),
             ("expert-s2", "expert alone, S = 2"), ("logit-contrast-s1", "logit-contrast (DExperts), S = 1")]
TOPICS = ["sport", "business", "politics", "tech", "entertainment"]


def _acc(entry: dict) -> str:
    low, high = entry["ci"]
    return f"{entry['value']:.3f} [{low:.2f}, {high:.2f}]"


def _direction(metrics: dict, attribute: str) -> dict:
    return metrics["attributes"][attribute]["hard_accuracy"]


def _fluency(metrics: dict) -> tuple[float | None, float]:
    fluency = metrics.get("fluency") or {}
    return fluency.get("perplexity"), metrics["diversity"]["distinct_2"]


def _ratio(value, base) -> str:
    return "–" if value is None or base is None else f"{value:.1f} ({value / base:.2f}×)"


def sentiment_table(root: Path) -> list[str]:
    base = json.loads((root / "base-sentiment.json").read_text())
    base_ppl, base_d2 = _fluency(base["directions"]["positive"])
    lines = ["| system | judged positive, steering positive | judged negative, steering negative | mean | "
             "perplexity +/− (× base) | distinct-2 +/− |", "|---|---|---|---|---|---|"]
    b = base["directions"]
    lines.append(f"| base (no module) | {_acc(_direction(b['positive'], 'sentiment'))} | "
                 f"{_acc(_direction(b['negative'], 'sentiment'))} | 0.500 | {base_ppl:.1f} | {base_d2:.3f} |")
    for name, label in SENTIMENT:
        file = root / f"{name}-sentiment.json"
        if not file.is_file():
            continue
        m = json.loads(file.read_text())
        d = m["directions"]
        (pp, pd2), (np_, nd2) = _fluency(d["positive"]), _fluency(d["negative"])
        lines.append(f"| {label} | {_acc(_direction(d['positive'], 'sentiment'))} | "
                     f"{_acc(_direction(d['negative'], 'sentiment'))} | {_acc(m['mean']['hard_accuracy'])} | "
                     f"{_ratio(pp, base_ppl)} / {_ratio(np_, base_ppl)} | {pd2:.3f} / {nd2:.3f} |")
    return lines


def topic_table(root: Path) -> list[str]:
    base_ppl, base_d2 = _fluency(json.loads((root / "base-sentiment.json").read_text())["directions"]["positive"])
    lines = ["| steering (S = 2) | judged on target | base on the same target | perplexity (× base) | distinct-2 |",
             "|---|---|---|---|---|"]
    for topic in TOPICS:
        steered, base = root / f"topic-{topic}.json", root / f"base-topic-{topic}.json"
        if steered.is_file() and base.is_file():
            s, b = json.loads(steered.read_text()), json.loads(base.read_text())
            ppl, d2 = _fluency(s)
            lines.append(f"| topic={topic} | {_acc(_direction(s, 'topic'))} | {_acc(_direction(b, 'topic'))} | "
                         f"{_ratio(ppl, base_ppl)} | {d2:.3f} |")
    joint, base = root / "positive+sport.json", root / "base-positive+sport.json"
    if joint.is_file() and base.is_file():
        s, b = json.loads(joint.read_text()), json.loads(base.read_text())
        ppl, d2 = _fluency(s)
        lines.append(f"| sentiment=positive + topic=sport, both (joint) | {_acc(s['joint_hard_accuracy'])} | "
                     f"{_acc(b['joint_hard_accuracy'])} | {_ratio(ppl, base_ppl)} | {d2:.3f} |")
    return lines


def curve_table(root: Path) -> list[str]:
    """Judged accuracy of each module alone per training step (scripts/steering_curve.sh's metrics)."""
    order = ["step-50", "step-100", "step-150", "final"]
    lines = ["| recipe | direction | 50 steps | 100 steps | 150 steps | final |", "|---|---|---|---|---|---|"]
    for recipe in sorted(p for p in root.iterdir() if p.is_dir()):
        for label in ("positive", "negative"):
            cells = []
            for step in order:
                file = recipe / f"{label}-{step}.json"
                cells.append(_acc(_direction(json.loads(file.read_text()), "sentiment")) if file.is_file() else "–")
            if any(c != "–" for c in cells):
                lines.append(f"| {recipe.name} | judged {label} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str]) -> None:
    root = Path(argv[0] if argv else "runs/steering")
    curve = Path(argv[1] if len(argv) > 1 else "runs/steering-curve")
    print("\n".join(sentiment_table(root)))
    print()
    print("\n".join(topic_table(root)))
    if curve.is_dir():
        print()
        print("\n".join(curve_table(curve)))


if __name__ == "__main__":
    main(sys.argv[1:])
