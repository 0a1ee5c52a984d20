"""Re-judge the study's headline (output-sum against each single-dataset module) with a judge that shares
no corpus with the modules: the study's output-sum learnt from IMDb, Rotten Tomatoes and tweets, so no
trained judge is independent of it and the lexicons (VADER + TextBlob + AFINN) decide; the in-domain
panel and VADER alone are reported beside them.

    loracompose run configs/study-rejudge.yaml && python scripts/rejudge_study.py runs/study-rejudge [--out F]

Reads every evaluated cell's generations from WORKDIR/cache/ (the cell's metrics.json names its
generations file), pairs output-sum with each single module on (prompt, seed, sample) per direction,
and prints, per judge and direction and for the mean of both directions: each side's share on target,
Δ = output-sum − single with a 95 % paired bootstrap interval over prompts, and the exact McNemar p
Holm-adjusted over the rows of each judge's table (the study's headline layout).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from loracompose.evaluate.generations import read_generations
from loracompose.evaluate.independent import choose_independent, module_corpora
from loracompose.evaluate.panel import JudgeSettings, judge_panel
from loracompose.evaluate.significance import bootstrap_mean_of_means, holm, mcnemar_exact, paired_bootstrap
from loracompose.modules import read_module


def cells(workdir: Path) -> dict[tuple[str, str], list]:
    """(condition, direction) → records, from the evaluated cells (one cell per seed: joined)."""
    found = {}
    for metrics_file in sorted((workdir / "cache" / "evaluate").glob("*.json")):
        metrics = json.loads(metrics_file.read_text())
        direction = metrics["targets"].get("sentiment")
        records = read_generations(metrics["generations"]["path"])
        weights = records[0].extra["composition"]["weights"]
        modules = sorted(weights)
        condition = "output-sum" if len(modules) > 1 else f"single:{modules[0].split('@')[1]}"
        found.setdefault((condition, direction), []).extend(records)
    return found


def judged(records, judge, labels, direction) -> np.ndarray:
    p = judge.predict_proba([r.prompt + r.text for r in records])
    index = labels.index(direction)
    return p[:, index] > p[:, 1 - index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="also write the tables as JSON")
    args = parser.parse_args()
    found = cells(args.workdir)
    panel = judge_panel("sentiment", JudgeSettings(), progress=False)
    modules = [read_module(p) for p in (args.workdir / "cache" / "train").iterdir() if (p / "loracompose.json").is_file()]
    independent = choose_independent(panel, module_corpora(modules))
    judges = {f"independent: {independent.name}": independent.judge,
              "panel (in-domain vote)": panel.judges[0], "VADER": next(j for j in panel.judges if j.name == "vader")}
    singles = sorted({c for c, _ in found if c.startswith("single:")})
    tables = {}
    for judge_name, judge in judges.items():
        rows = []
        hits = {}
        for (condition, direction), records in found.items():
            order = sorted(range(len(records)), key=lambda i: records[i].key)
            hits[(condition, direction)] = (judged(records, judge, panel.labels, direction)[order],
                                            [records[i].prompt for i in order])
        for single in singles:
            for direction in ("positive", "negative"):
                (a, prompts), (b, _) = hits[(single, direction)], hits[("output-sum", direction)]
                ci = paired_bootstrap(a, b, resamples=2000, groups=prompts)
                rows.append({"direction": direction, "single": single, "single_share": float(a.mean()),
                             "output_sum_share": float(b.mean()), "delta": ci.estimate, "ci": [ci.low, ci.high],
                             "p": mcnemar_exact(a, b).p_value, "pairs": int(a.size)})
            diffs = [hits[("output-sum", d)][0].astype(float) - hits[(single, d)][0] for d in ("positive", "negative")]
            ci = bootstrap_mean_of_means(diffs, [hits[(single, d)][1] for d in ("positive", "negative")],
                                         resamples=2000)
            pooled_a = np.concatenate([hits[(single, d)][0] for d in ("positive", "negative")])
            pooled_b = np.concatenate([hits[("output-sum", d)][0] for d in ("positive", "negative")])
            rows.append({"direction": "both (mean)", "single": single, "single_share": float(pooled_a.mean()),
                         "output_sum_share": float(pooled_b.mean()), "delta": ci.estimate, "ci": [ci.low, ci.high],
                         "p": mcnemar_exact(pooled_a, pooled_b).p_value, "pairs": int(pooled_a.size)})
        for row, p in zip(rows, holm([r["p"] for r in rows])):
            row["p_holm"] = p
        tables[judge_name] = rows
        print(f"\n### {judge_name}\n")
        print("| direction | single module | single | output-sum | Δ output-sum − single [95% CI] | p (Holm) | pairs |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['direction']} | {r['single'].split(':')[1]} | {r['single_share']:.3f} | "
                  f"{r['output_sum_share']:.3f} | {r['delta']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | "
                  f"{r['p_holm']:.2g} | {r['pairs']} |")
    if args.out:
        args.out.write_text(json.dumps({"independent_judge": independent.record(), "tables": tables}, indent=2) + "\n")


if __name__ == "__main__":
    main()
