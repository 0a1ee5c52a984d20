"""Wall time per piece of an in-process experiment run, from its log files.

    .venv/bin/python scripts/run_costs.py runs/study/logs/study-cpu-*.log

An in-process run does one unit after another, so a unit's time is the gap between its "done:"
line and the last unit's line (or the run's first): model loading included; "cached:" units cost
nothing and are skipped. Units are grouped by experiment, model and kind: train, compose (weight
merges), and cells by task set (from the target) and condition family (single, output-sum,
logit-sum, ...). Runs under Ray interleave units: this script is for the in-process executor only.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from datetime import datetime

LINE = re.compile(r"^(\S+ \S+),\d+ INFO \S+: (.*)$")
CELL = re.compile(r"^(?P<condition>\S+) → (?P<target>.+) on (?P<prompts>\S+), seed \d+ \((?P<model>[^)]+)\)$")
TRAIN = re.compile(r"^train (?P<recipe>\S+) on (?P<model>\S+)$")
COMPOSE = re.compile(r"^(?P<method>\S+) of .+ on (?P<model>\S+)$")


def piece(title: str) -> tuple[str, str]:
    """(model, piece) of a unit title, e.g. ('smollm2-135m', 'cell single')."""
    if m := TRAIN.match(title):
        return m["model"], "train"
    if m := CELL.match(title):
        task = "multi" if "+" in m["target"] else "sentiment" if m["target"] in ("positive", "negative") \
            else "topic"
        return m["model"], f"cell {task} {m['condition'].split(':')[0]}"
    if m := COMPOSE.match(title):
        return m["model"], "compose " + m["method"]
    return "?", title


def costs(paths: list[str]) -> dict[tuple[str, str, str], list[float]]:
    seconds: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for path in paths:
        previous, experiment = None, "?"
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                m = LINE.match(line.rstrip("\n"))
                if not m:
                    continue
                when = datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S")
                message = m[2]
                if message.startswith("experiment "):
                    experiment = message.split()[1].rstrip(":")
                if message.startswith("done: ") and previous is not None:
                    title = message[len("done: "):].rsplit(" (", 1)[0]
                    seconds[(experiment, *piece(title))].append((when - previous).total_seconds())
                if message.startswith(("done: ", "cached: ", "experiment ")):
                    previous = when  # the end of the last unit (or the start of the run)
    return seconds


def main(paths: list[str]) -> None:
    table = costs(paths)
    print("| experiment | model | piece | units | total (min) | per unit (s) |")
    print("|---|---|---|---|---|---|")
    total = 0.0
    for (experiment, model, name), values in sorted(table.items()):
        total += sum(values)
        print(f"| {experiment} | {model} | {name} | {len(values)} | {sum(values) / 60:.1f} | "
              f"{sum(values) / len(values):.0f} |")
    print(f"| all | | | {sum(len(v) for v in table.values())} | {total / 60:.1f} | |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
