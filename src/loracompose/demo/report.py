"""The demo's report: a Markdown table of each steering condition against the base, calibration, examples;
and its HTML page (Python-Markdown with the `tables` extension)."""

from __future__ import annotations

import json
from pathlib import Path
import markdown

from loracompose.demo.settings import CONDITIONS, DemoSettings


def examples(files: dict[str, Path], per_condition: int = 3) -> dict[str, list[str]]:
    """The first samples of the first prompts, the same prompts for every condition."""
    out = {}
    for name, path in files.items():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        chosen = [r for r in rows if r["sample"] == 0 and r["seed"] == rows[0]["seed"]][:per_condition]
        out[name] = [" ".join((r["prompt"] + r["text"]).split()) for r in chosen]  # the text as the model wrote it
    return out


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _p(x) -> str:
    return "–" if x is None else (f"{x:.1e}" if x < 1e-3 else f"{x:.3f}")


def _row_label(condition: str, metric: str) -> str:
    """'toward negative: sentiment=negative hard' → 'steer sentiment=negative: judged negative'."""
    metric = metric.removesuffix(" hard")
    if condition == "sentiment":
        if metric.startswith("mean of directions"):
            return "sentiment, mean of both directions"
        label = metric.split(":", 1)[0].removeprefix("toward ")
        return f"steer sentiment={label}: judged {label}"
    steer = next(c.steer for c in CONDITIONS if c.name == condition)
    judged = "both (joint)" if metric == "joint" else metric.split("=", 1)[-1]
    return f"steer {steer}: judged {judged}"


def report_markdown(settings: DemoSettings, results: dict, examples: dict[str, list[str]], n: int,
                    commit: str | None = None) -> str:
    lines = ["# loracompose demo: steering SmolLM2 with its starter modules", "",
             f"Model `{settings.model}`, starter modules ({settings.strategy} strategy, strength {settings.strength:g}); "
             f"prompts `{settings.prompts}` × seeds {', '.join(map(str, settings.seeds))} × {settings.samples} "
             f"samples = {n} continuations per condition, {settings.max_new_tokens} new tokens, top-k 50, top-p 0.95. "
             "Each row: share of continuations the judges' majority vote puts on target (hard accuracy), the base "
             "model's share on the same prompts, the paired difference with a 95% bootstrap interval (prompts "
             "resampled), and the exact McNemar p-value (Holm-adjusted within each comparison).", "",
             f"Reproduce: `loracompose demo --prompts {settings.prompts} --seeds "
             f"{','.join(map(str, settings.seeds))} --samples {settings.samples}` (this report), or by hand: "
             f"`loracompose generate --steer sentiment=positive --prompts {settings.prompts} --out pos.jsonl`, the "
             "same with `sentiment=negative` and with no `--steer`, then `loracompose evaluate --positive pos.jsonl "
             "--negative neg.jsonl --baseline base.jsonl` and `loracompose compare`.", "",
             f"Code: loracompose commit `{commit or 'unknown (not a git checkout)'}`.", "",
             "| steering | judged on target | base | Δ | 95% interval | p (Holm) |", "|---|---|---|---|---|---|"]
    for name, rows in results["comparisons"].items():
        for row in rows:
            if not row["metric"].endswith("hard"):
                continue
            ci = f"[{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]" if row.get("ci") else "–"
            lines.append(f"| {_row_label(name, row['metric'])} | **{_fmt(row['other'])}** | "
                         f"{_fmt(row['base'])} | {row['difference']:+.3f} | {ci} | {_p(row.get('p_holm'))} |")
    distinct = [(name, row) for name, rows in results["comparisons"].items() for row in rows
                if row["metric"].endswith("distinct-2")]
    if distinct:
        lines += ["", "Distinct-2 (share of distinct bigrams; the base's beside it): "
                  + "; ".join(f"{name} {row['metric'].replace('distinct-2', '').strip(': ')} "
                              f"{_fmt(row['other'])} (base {_fmt(row['base'])})".replace("  ", " ")
                              for name, row in distinct) + "."]
    reader = results.get("reader")
    if reader:
        judge = reader["independent"]
        lines += ["", "## As a reader would judge it: the independent judge, and the instruction beside --steer", "",
                  f"The panel above learnt from the same corpora as the modules. Here the deciding judge is "
                  f"**{judge['name']}**, chosen from the modules' metadata because it shares no corpus with them "
                  f"(it learnt from {', '.join(judge['corpora']) or 'no corpus'}; the modules from "
                  f"{', '.join(judge['module_corpora']) or 'nothing recorded'}), with the panel and VADER beside it, "
                  "how well the text follows its prompt (relevance, × the base's) and its share of non-words. "
                  "*Prompting* asks the same model through its chat template (\"Continue this text in a clearly "
                  "positive tone: …\"), no module. The full comparison (activation addition, DExperts, model "
                  "arithmetic, perplexity, a blind read) is `loracompose versus` (docs/versus).", "",
                  reader["markdown"].split("\n", 2)[2].strip()]
    shares = dict((results.get("calibration") or {}).get("sets", {}))
    if results.get("baseline"):
        shares["the base model's continuations of these prompts"] = results["baseline"]
    if shares:
        lines += ["", "**Calibration** (where 0.5 is): the sentiment panel's majority vote calls positive "
                  + "; ".join(f"{v['vote_share']['positive']:.3f} of {k} (n = {v.get('n', '?')})"
                              for k, v in shares.items() if "positive" in v.get("vote_share", {})) + "."]
    lines += ["", "## Example generations (seed, sample 0; the same prompts in every condition)", ""]
    for name, texts in examples.items():
        lines += [f"**{name}**", ""] + [f"- {t}" for t in texts] + [""]
    return "\n".join(lines) + "\n"


def markdown_to_html(text: str, title: str) -> str:
    """A standalone HTML page of a Markdown report."""
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}")
    body = markdown.markdown(text, extensions=["tables"])
    return f"<!doctype html><meta charset=utf-8><title>{title}</title><style>{style}</style>{body}"
