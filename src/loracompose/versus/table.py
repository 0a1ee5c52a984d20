"""The side-by-side table and the frontier plot, from the per-record scores.

For condition m, direction d ∈ {positive, negative} and its n texts (the base's file serves
every direction):

    on target (judge J)   mean_i [J(text_i) = d]        J: independent, panel, VADER (|c| ≥ 0.05)
    mean of directions    (1/2)·Σ_d share_d, bootstrap over prompts shared by both directions
    perplexity ratio      exp(Σ NLL / Σ tokens) of m's texts ÷ the base's, on the same prompts and seeds
    relevance ratio       mean relevance of m's texts ÷ the base's
    non-word rate         Σ non-words / Σ words checked
    panel − independent   how much the in-domain panel over-credits the condition's texts

Intervals: 95 % percentile bootstrap resampling prompts (their samples are correlated).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from loracompose.evaluate.lexicon import VADER_THRESHOLD
from loracompose.evaluate.significance import bootstrap_mean, bootstrap_mean_of_means
from loracompose.versus.conditions import DIRECTIONS, Condition

JUDGES = ("independent", "panel", "vader")


def on_target(rows: list[dict], judge: str, direction: str) -> np.ndarray:
    if judge == "vader":
        c = np.array([r["vader"] for r in rows])
        return c >= VADER_THRESHOLD if direction == "positive" else c <= -VADER_THRESHOLD
    return np.array([r[judge] == direction for r in rows])


def perplexity(rows: list[dict]) -> float | None:
    scored = [r for r in rows if "nll" in r]
    tokens = sum(r["tokens"] for r in scored)
    return math.exp(sum(r["nll"] for r in scored) / tokens) if tokens else None


def _share(hits: np.ndarray, prompts: list[str], resamples: int) -> dict:
    ci = bootstrap_mean(hits.astype(float), resamples=resamples, groups=prompts)
    return {"value": ci.estimate, "ci": [ci.low, ci.high], "n": int(hits.size)}


def summarize(rows_by_direction: dict[str, list[dict]], base_rows: list[dict], blind: dict | None,
              resamples: int) -> dict:
    """One condition's numbers (see the module docstring)."""
    base_ppl, base_rel = perplexity(base_rows), float(np.mean([r["relevance"] for r in base_rows]))
    result: dict = {"directions": {}}
    for d in DIRECTIONS:
        rows = rows_by_direction[d]
        prompts = [r["prompt"] for r in rows]
        ppl = perplexity(rows)
        entry = {j: _share(on_target(rows, j, d), prompts, resamples) for j in JUDGES}
        entry |= {"perplexity": ppl, "perplexity_ratio": ppl / base_ppl if ppl and base_ppl else None,
                  "relevance": float(np.mean([r["relevance"] for r in rows])),
                  "non_word_rate": sum(r["non_words"] for r in rows) / max(1, sum(r["words"] for r in rows)),
                  "panel_minus_independent": entry["panel"]["value"] - entry["independent"]["value"],
                  "agreement_panel_independent": float(np.mean([r["panel"] == r["independent"] for r in rows])),
                  "n": len(rows)}
        entry["relevance_ratio"] = entry["relevance"] / base_rel if base_rel else None
        if blind and d in blind:
            entry["blind"] = blind[d]
        result["directions"][d] = entry
    for j in JUDGES:
        lists = [on_target(rows_by_direction[d], j, d).astype(float) for d in DIRECTIONS]
        groups = [[r["prompt"] for r in rows_by_direction[d]] for d in DIRECTIONS]
        ci = bootstrap_mean_of_means(lists, groups, resamples=resamples)
        result[f"{j}_mean"] = {"value": ci.estimate, "ci": [ci.low, ci.high]}
    ratios = [result["directions"][d]["perplexity_ratio"] for d in DIRECTIONS]
    result["perplexity_ratio_mean"] = float(np.mean(ratios)) if all(r is not None for r in ratios) else None
    return result


def _ci(entry: dict) -> str:
    return f"{entry['value']:.2f} [{entry['ci'][0]:.2f}, {entry['ci'][1]:.2f}]"


def _pair(result: dict, key: str, fmt: str) -> str:
    values = [result["directions"][d].get(key) for d in DIRECTIONS]
    return " / ".join("–" if v is None else format(v, fmt) for v in values)


def _shares(result: dict, judge: str) -> str:
    return " / ".join(f"{result['directions'][d][judge]['value']:.2f}" for d in DIRECTIONS)


def _blind_cell(result: dict) -> str:
    cells = []
    for d in DIRECTIONS:
        b = result["directions"][d].get("blind")
        cells.append("–" if not b else f"{b['on_target']['value']:.2f} / {b['coherent']['value']:.2f} (n={b['n']})")
    return " ; ".join(cells)


def markdown(prompt_set: str, results: dict[Condition, dict], independent: dict, human: dict | None,
             base_ppl: float | None) -> str:
    """One prompt set's table (rows in the run's condition order)."""
    lines = [f"### `{prompt_set}`", "",
             f"Independent judge: **{independent['name']}** ({independent['model']}; learnt from "
             f"{', '.join(independent['corpora']) or 'no corpus'}; the modules learnt from "
             f"{', '.join(independent['module_corpora'])}). Cells: toward positive / toward negative.", "",
             "| method | independent judge, mean [95% CI] | independent +/− | panel +/− | VADER +/− | panel − independent "
             "+/− | perplexity × base +/− | relevance × base +/− | non-words +/− | blind read: on target / coherent, "
             "+ ; − | n per direction |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for condition, r in results.items():
        n = r["directions"]["positive"]["n"]
        lines.append(
            f"| {condition.label} | {_ci(r['independent_mean'])} | "
            f"{_shares(r, 'independent')} | {_shares(r, 'panel')} | {_shares(r, 'vader')} | "
            f"{_pair(r, 'panel_minus_independent', '+.2f')} | {_pair(r, 'perplexity_ratio', '.2f')} | "
            f"{_pair(r, 'relevance_ratio', '.2f')} | {_pair(r, 'non_word_rate', '.3f')} | {_blind_cell(r)} | {n} |")
    if base_ppl:
        line = f"The base's perplexity: {base_ppl:.1f}."
        if human:
            line += (" Human-written text under the same reference (the first 4 words as the prompt, the next 40 "
                     "as the continuation; " + ", ".join(human["positive"]["datasets"]) + " test splits): "
                     + ", ".join(f"{label} {h['perplexity']:.1f} ({h['perplexity'] / base_ppl:.2f}× the base's, "
                                 f"{h['texts']} texts)" for label, h in human.items()) + ".")
        lines += ["", line]
    return "\n".join(lines)


def frontier_plot(tables: dict[str, dict[Condition, dict]], human: dict | None, base_ppl: dict[str, float],
                  path: Path) -> Path:
    """Accuracy under the independent judge (mean of both directions) against the perplexity ratio,
    each method a line over its strength sweep; one panel per prompt set."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(6.2 * len(tables), 4.8), squeeze=False)
    for ax, (prompt_set, results) in zip(axes[0], tables.items()):
        methods: dict[str, list] = {}
        for condition, r in results.items():
            key = condition.method if condition.method != "actadd" else f"actadd (layer {condition.layer})"
            methods.setdefault(key, []).append((condition.strength or 0, r["perplexity_ratio_mean"],
                                                r["independent_mean"]["value"], condition))
        for key, points in methods.items():
            points.sort(key=lambda p: p[0])
            xs, ys = [p[1] for p in points], [p[2] for p in points]
            if any(x is None for x in xs):
                continue
            ax.plot(xs, ys, marker="o", label=key)
            for x, y, (_, _, _, c) in zip(xs, ys, points):
                if c.strength is not None:
                    ax.annotate(f"{c.strength:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if human and base_ppl.get(prompt_set):
            for label, h in human.items():
                ax.axvline(h["perplexity"] / base_ppl[prompt_set], ls="--", lw=0.8, color="grey")
                ax.annotate(f"human {label}", (h["perplexity"] / base_ppl[prompt_set], 0.02), rotation=90,
                            fontsize=7, color="grey", xycoords=("data", "axes fraction"))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g×"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks([t for t in (0.8, 1, 1.5, 2, 3, 4, 6, 8) if t])
        ax.set_xlabel("perplexity × the base's (mean of both directions; log scale)")
        ax.set_ylabel("on target under the independent judge (mean of both directions)")
        ax.set_title(f"{prompt_set}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
