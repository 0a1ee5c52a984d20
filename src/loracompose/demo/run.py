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

import json
import logging
from dataclasses import asdict
from pathlib import Path

from loracompose.baselines.prompting import instruction_template
from loracompose.compose.bank import ModuleBank, discover_modules
from loracompose.decoding import SamplingConfig
from loracompose.demo.report import examples, markdown_to_html, report_markdown
from loracompose.demo.settings import CONDITIONS, DemoSettings
from loracompose.errors import LoraComposeError
from loracompose.evaluate.compare import compare, rows_as_dicts
from loracompose.evaluate.directions import evaluate_directions
from loracompose.evaluate.metrics import EvalOptions, evaluate_generations, load_reference, write_metrics
from loracompose.evaluate.independent import choose_independent, module_corpora
from loracompose.evaluate.panel import JudgeSettings, _Embeddings, judge_panel
from loracompose.generate import Steerer
from loracompose.models import load_base
from loracompose.modules import read_module
from loracompose.paths import write_text_atomic
from loracompose.prompts import load_prompts
from loracompose.provenance import git_commit
from loracompose.steer import parse_steer, resolve_steering, starter_modules_dir
from loracompose.versus.conditions import Condition
from loracompose.versus.generate import attribute_modules
from loracompose.versus.score import score_file
from loracompose.versus.table import markdown as versus_markdown
from loracompose.versus.table import summarize

log = logging.getLogger(__name__)


def _slug(name: str) -> str:
    return name.replace(" + ", "+").replace(" ", "-")


def generate_conditions(settings: DemoSettings, out: Path) -> dict[str, Path]:
    """One generations file per condition under out/generations/ (reused when already written)."""
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
        template = (instruction_template(base.tokenizer, "sentiment", condition.prompted)
                    if condition.prompted else "plain")
        log.info("generating %s (%s)", condition.name, condition.steer or condition.prompted and "instruction"
                 or "no module")
        records = steerer.generate(prompts, composition, method, list(settings.seeds), settings.samples, sampling,
                                   template=template, progress=True)
        if condition.prompted:
            records = [{**r, "versus": {"method": "prompt", "direction": condition.prompted}} for r in records]
        if plan:
            records = [{**r, "steer": plan.record()} for r in records]
        write_text_atomic(files[condition.name], "".join(json.dumps(r) + "\n" for r in records))
        write_text_atomic(stamp, wanted)
    return files


def evaluate_conditions(settings: DemoSettings, files: dict[str, Path], out: Path) -> dict:
    """Metrics of every condition and its paired comparison with the base."""
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
        if condition.name in ("base", "positive", "negative") or condition.prompted:
            continue
        slug = _slug(condition.name)
        pairs[condition.name] = (
            save(f"base-{slug}", evaluate_generations(base, condition.judged, options, reference)),
            save(f"steer-{slug}", evaluate_generations(files[condition.name], condition.judged, options, reference)))
    comparisons = {name: rows_as_dicts(compare(a, [b], resamples=settings.resamples)) for name, (a, b) in pairs.items()}
    steer_metrics = json.loads(pairs["sentiment"][1].read_text())
    return {"comparisons": comparisons, "calibration": steer_metrics.get("calibration"),
            "baseline": steer_metrics.get("baseline"), "reader": reader_table(settings, files, out, options)}


def reader_table(settings: DemoSettings, files: dict[str, Path], out: Path, options: EvalOptions) -> dict:
    """--steer and the instruction against the base, under the independent judge chosen from the modules'
    corpora, with the panel, VADER, relevance and non-words beside it (the `versus` table's columns)."""
    directory = Path(settings.modules) if settings.modules else starter_modules_dir(settings.model)
    infos = attribute_modules(directory, "sentiment")  # the modules that steered these texts' sentiment
    panel = judge_panel("sentiment", options.settings, progress=False)
    independent = choose_independent(panel, module_corpora(infos))
    embeddings = _Embeddings(progress=False)

    def scored(name: str) -> list[dict]:
        return score_file(files[name], out / "scores" / f"{_slug(name)}.json", panel, independent, None, (),
                          embeddings)

    base = scored("base")
    results = {Condition("base"): summarize({"positive": base, "negative": base}, base, None, settings.resamples),
               Condition("contrast", settings.strength): summarize(
                   {"positive": scored("positive"), "negative": scored("negative")}, base, None, settings.resamples),
               Condition("prompt"): summarize({"positive": scored("prompted positive"),
                                               "negative": scored("prompted negative")}, base, None,
                                              settings.resamples)}
    return {"independent": independent.record(),
            "markdown": versus_markdown(settings.prompts, results, independent.record(), None, None)}


def run_demo(out: Path, settings: DemoSettings = DemoSettings()) -> Path:
    """Generate, evaluate and write the report; returns the report's path."""
    if settings.samples < 1 or not settings.seeds:
        raise LoraComposeError("the demo needs at least one seed and --samples >= 1")
    files = generate_conditions(settings, out)
    results = evaluate_conditions(settings, files, out)
    n = sum(1 for _ in files["base"].open())
    report = report_markdown(settings, results, examples(files), n, git_commit(dirty_paths=("src",)))
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_text_atomic(out / "report.html", markdown_to_html(report, "loracompose demo"))
    return write_text_atomic(out / "report.md", report)
