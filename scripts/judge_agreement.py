"""How far each judge agrees with a blind reader, on the texts of a revealed blind read.

    python scripts/judge_agreement.py docs/versus/blind-pplm35 [--modules DIR]
    python scripts/judge_agreement.py --versus runs/versus     # independent judge against VADER, every text

For the texts the reader called positive or negative, each judge's agreement with the reader (the
share where its verdict equals the reader's), per condition and over all; for the texts the reader
called neutral, the share each judge calls negative (what a judge over-credits as negative). Judges:
the independent judge chosen for the modules (default: the starter modules of smollm2-135m), the
in-domain panel's vote, VADER past its ±0.05 cut-off, and the lexicon ensemble. Texts are judged as
the runs judge them: prompt + continuation.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from loracompose.compose.bank import discover_modules
from loracompose.evaluate.independent import choose_independent, module_corpora
from loracompose.evaluate.lexicon import VADER_THRESHOLD, lexicon_scores
from loracompose.evaluate.panel import JudgeSettings, judge_panel
from loracompose.modules import read_module
from loracompose.steer import starter_modules_dir


def verdicts(judge, labels, texts) -> np.ndarray:
    p = judge.predict_proba(texts)[:, labels.index("positive")]
    return np.where(p > 0.5, "positive", np.where(p < 0.5, "negative", "neutral"))


def versus_agreement(out: Path) -> None:
    """Per prompt set of a `versus` run: how often the independent judge and VADER agree, on the texts
    where VADER takes a side (|compound| ≥ 0.05), over every condition's scored texts."""
    for folder in sorted((out / "scores").iterdir()):
        if not folder.is_dir():
            continue
        agree = polar = total = 0
        for path in sorted(folder.glob("*.json")):
            for r in json.loads(path.read_text())["records"]:
                total += 1
                if abs(r["vader"]) >= VADER_THRESHOLD:
                    polar += 1
                    agree += r["independent"] == ("positive" if r["vader"] > 0 else "negative")
        print(f"{folder.name}: the independent judge agrees with VADER on {agree / polar:.3f} of the {polar} texts "
              f"(of {total}) where VADER takes a side")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, nargs="?")
    parser.add_argument("--modules", type=Path, default=None)
    parser.add_argument("--versus", type=Path, default=None, help="a `versus` output directory instead")
    args = parser.parse_args()
    if args.versus:
        return versus_agreement(args.versus)
    key = json.loads((args.directory / "key.json").read_text())
    results = json.loads((args.directory / "results.json").read_text())
    rows = list(csv.DictReader(open(results["sheet"], newline="", encoding="utf-8")))
    texts = [r["prompt"] + r["continuation"] for r in rows]
    reader = np.array([r["sentiment"] for r in rows])
    condition = np.array([key["items"][r["id"]]["condition"] for r in rows])
    panel = judge_panel("sentiment", JudgeSettings(), progress=False)
    directory = args.modules or starter_modules_dir("smollm2-135m")
    infos = [read_module(p) for p in discover_modules(directory).values()]
    independent = choose_independent(panel, module_corpora([i for i in infos if i.attribute == "sentiment"]))
    vader = lexicon_scores(texts, ("vader",))["vader"]
    judged = {
        f"independent ({independent.name})": verdicts(independent.judge, panel.labels, texts),
        "panel (in-domain vote)": verdicts(panel.judges[0], panel.labels, texts),
        "VADER (±0.05)": np.where(vader >= VADER_THRESHOLD, "positive",
                                  np.where(vader <= -VADER_THRESHOLD, "negative", "neutral")),
        "lexicons (mean of 3)": verdicts(next(j for j in panel.judges if j.name == "lexicons"), panel.labels, texts),
    }
    polar = reader != "neutral"
    print(f"reader: {results['reader']}\n{polar.sum()} texts read positive or negative, "
          f"{(~polar).sum()} read neutral\n")
    print("| judge | agrees with the reader (texts read +/−) | calls negative, of texts read neutral | "
          "calls negative, of texts read positive |")
    print("|---|---|---|---|")
    for name, verdict in judged.items():
        agree = (verdict[polar] == reader[polar]).mean()
        neutral_neg = (verdict[~polar] == "negative").mean()
        pos_neg = (verdict[reader == "positive"] == "negative").mean()
        print(f"| {name} | {agree:.3f} (n={polar.sum()}) | {neutral_neg:.3f} (n={(~polar).sum()}) | "
              f"{pos_neg:.3f} (n={(reader == 'positive').sum()}) |")
    print("\nper condition, agreement on texts read +/− (independent / panel / VADER):")
    for c in dict.fromkeys(condition):
        m = (condition == c) & polar
        cells = " / ".join(f"{(v[m] == reader[m]).mean():.2f}" for v in list(judged.values())[:3])
        print(f"  {c:30} n={m.sum():3}  {cells}")


if __name__ == "__main__":
    main()
