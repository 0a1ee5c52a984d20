"""The quick-start demo: steer the packaged SmolLM2 with its starter modules and measure it.

    loracompose demo [--out runs/demo] [--prompts pplm] [--seeds 1,2] [--samples 2]

Conditions, each from the same prompts, seeds and samples (so every continuation
pairs with the base's on (prompt, seed, sample)):

    base              no module
    positive          --steer sentiment=positive   (contrast: 2·positive − 2·negative module)
    negative          --steer sentiment=negative   (contrast: 2·negative − 2·positive module)
    sport             --steer topic=sport
    positive + sport  --steer sentiment=positive,topic=sport

Evaluation: sentiment in both directions and their mean (`evaluate_directions`), the
topic and the joint target, each against the base with paired bootstrap intervals
(clustered by prompt) and exact McNemar p-values (`compare`). Writes generations,
metrics and `report.md` / `report.html` under `--out`. No training: the modules
ship with the package (configs/starter.yaml made them).
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from loracompose.errors import LoraComposeError
from loracompose.paths import write_text_atomic
from loracompose.steer import DEFAULT_STRENGTH

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoCondition:
    name: str
    steer: str | None  # attribute=value,... or None for the base
    judged: dict[str, str]  # the targets its text is judged for


CONDITIONS = [
    DemoCondition("base", None, {}),
    DemoCondition("positive", "sentiment=positive", {"sentiment": "positive"}),
    DemoCondition("negative", "sentiment=negative", {"sentiment": "negative"}),
    DemoCondition("sport", "topic=sport", {"topic": "sport"}),
    DemoCondition("positive + sport", "sentiment=positive,topic=sport", {"sentiment": "positive", "topic": "sport"}),
]


@dataclass(frozen=True)
class DemoSettings:
    model: str = "smollm2-135m"
    modules: str | None = None  # a modules directory; None: the base's starter modules
    prompts: str = "pplm"
    seeds: tuple[int, ...] = (1, 2)
    samples: int = 2
    max_new_tokens: int = 40
    strength: float = DEFAULT_STRENGTH
    strategy: str = "contrast"
    reference: str | None = None  # perplexity model (None: skipped; distinct-2 is always reported)
    resamples: int = 2000
    judges: object = None  # JudgeSettings of the built-in panels (None: the defaults)


def _slug(name: str) -> str:
    return name.replace(" + ", "+").replace(" ", "-")


def generate_conditions(settings: DemoSettings, out: Path) -> dict[str, Path]:
    """One generations file per condition under out/generations/ (reused when already written)."""
    from loracompose.compose.bank import ModuleBank, discover_modules
    from loracompose.decoding import SamplingConfig
    from loracompose.generate import Steerer
    from loracompose.models import load_base
    from loracompose.modules import read_module
    from loracompose.prompts import load_prompts
    from loracompose.steer import parse_steer, resolve_steering, starter_modules_dir

    prompts = load_prompts(settings.prompts)
    directory = Path(settings.modules) if settings.modules else starter_modules_dir(settings.model)
    paths = discover_modules(directory)
    infos = {name: read_module(path) for name, path in paths.items()}
    plans = {c.name: resolve_steering(infos, parse_steer(c.steer), settings.strength, settings.strategy)
             for c in CONDITIONS if c.steer}  # every bad target fails here, before the model loads
    files = {c.name: out / "generations" / f"{_slug(c.name)}.jsonl" for c in CONDITIONS}
    stamp = out / "generations" / "settings.json"
    wanted = json.dumps({**asdict(settings), "modules": str(directory)}, sort_keys=True, default=str)
    if stamp.is_file() and stamp.read_text() != wanted:  # other settings: nothing here can be reused
        for path in files.values():
            path.unlink(missing_ok=True)
    todo = [c for c in CONDITIONS if not files[c.name].is_file()]
    if not todo:
        return files
    base = load_base(settings.model, quantize=None)
    steerer = Steerer(base.model, base.tokenizer, ModuleBank(base.model, paths, base.fingerprint), settings.model)
    sampling = SamplingConfig(max_new_tokens=settings.max_new_tokens)
    for condition in todo:
        plan = plans.get(condition.name)
        composition, method = (plan.composition, plan.method) if plan else ({}, "output-sum")
        log.info("generating %s (%s)", condition.name, condition.steer or "no module")
        records = steerer.generate(prompts, composition, method, list(settings.seeds), settings.samples, sampling,
                                   progress=True)
        if plan:
            records = [{**r, "steer": plan.record()} for r in records]
        write_text_atomic(files[condition.name], "".join(json.dumps(r) + "\n" for r in records))
        write_text_atomic(stamp, wanted)
    return files


def evaluate_conditions(settings: DemoSettings, files: dict[str, Path], out: Path) -> dict:
    """Metrics of every condition and its paired comparison with the base."""
    from loracompose.evaluate.compare import compare, rows_as_dicts
    from loracompose.evaluate.directions import evaluate_directions
    from loracompose.evaluate.metrics import EvalOptions, evaluate_generations, load_reference, write_metrics

    from loracompose.evaluate.panel import JudgeSettings

    options = EvalOptions(reference=settings.reference, resamples=settings.resamples, check_directions=True,
                          calibrate=True, settings=settings.judges or JudgeSettings(), progress=False)
    reference = load_reference(options)
    metrics_dir = out / "metrics"

    def save(name: str, metrics: dict) -> Path:
        return write_metrics(metrics, metrics_dir / f"{name}.json")

    base, steered = files["base"], {"positive": files["positive"], "negative": files["negative"]}
    pairs = {
        "sentiment": (save("base-sentiment", evaluate_directions({"positive": base, "negative": base}, "sentiment",
                                                                 options=options, reference=reference)),
                      save("steer-sentiment", evaluate_directions(steered, "sentiment", options=options,
                                                                  baseline=base, reference=reference))),
    }
    for condition in CONDITIONS:
        if condition.name in ("base", "positive", "negative"):
            continue
        slug = _slug(condition.name)
        pairs[condition.name] = (
            save(f"base-{slug}", evaluate_generations(base, condition.judged, options, reference)),
            save(f"steer-{slug}", evaluate_generations(files[condition.name], condition.judged, options, reference)))
    comparisons = {name: rows_as_dicts(compare(a, [b], resamples=settings.resamples)) for name, (a, b) in pairs.items()}
    steer_metrics = json.loads(pairs["sentiment"][1].read_text())
    return {"comparisons": comparisons, "calibration": steer_metrics.get("calibration"),
            "baseline": steer_metrics.get("baseline")}


def _examples(files: dict[str, Path], per_condition: int = 3) -> dict[str, list[str]]:
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


def report_markdown(settings: DemoSettings, results: dict, examples: dict[str, list[str]], n: int) -> str:
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


def _markdown_to_html(markdown: str) -> str:
    """A plain HTML page of the report (tables, headings, bold, lists) — no dependency needed for this much."""
    body, table = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if not set("".join(cells)) <= set("-: "):
                table.append(cells)
            continue
        if table:
            head, *rows = table
            body.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
            table = []
        text = html.escape(line)
        while "**" in text:
            text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
        if text.startswith("# "):
            body.append(f"<h1>{text[2:]}</h1>")
        elif text.startswith("## "):
            body.append(f"<h2>{text[3:]}</h2>")
        elif text.startswith("- "):
            body.append(f"<li>{text[2:]}</li>")
        elif text:
            body.append(f"<p>{text}</p>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}")
    return f"<!doctype html><meta charset=utf-8><title>loracompose demo</title><style>{style}</style>" + "".join(body)


def run_demo(out: Path, settings: DemoSettings = DemoSettings()) -> Path:
    """Generate, evaluate and write the report; returns the report's path."""
    if settings.samples < 1 or not settings.seeds:
        raise LoraComposeError("the demo needs at least one seed and --samples >= 1")
    files = generate_conditions(settings, out)
    results = evaluate_conditions(settings, files, out)
    n = sum(1 for _ in files["base"].open())
    report = report_markdown(settings, results, _examples(files), n)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_text_atomic(out / "report.html", _markdown_to_html(report))
    return write_text_atomic(out / "report.md", report)
