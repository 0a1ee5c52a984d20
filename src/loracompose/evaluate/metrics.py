"""Evaluate one generations file: attribute accuracy, fluency, diversity → metrics.json.

For each targeted attribute the panel of judges (three built-in kinds plus any
user judges) gives
    hard accuracy = mean over texts of [majority vote == target]
    soft accuracy = mean over texts of the judges' mean P(target | text)
each with a seeded bootstrap interval that resamples prompts, beside every judge's own hit rate and
its measured test accuracy. With several targets, the joint hard accuracy
counts texts whose every attribute vote hits.

Judges read the text as a reader sees it — prompt followed by continuation —
by default (`judge_input="full"`), or the continuation alone. Perplexity and
diversity always concern the continuation (perplexity given the prompt).

metrics.json also keeps each sample's hits, soft scores and NLL under its key
(prompt, sample, seed), which is what `compare` pairs on.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from loracompose import __version__
from loracompose.errors import LoraComposeError
from loracompose.evaluate.attributes import ATTRIBUTES, parse_targets
from loracompose.evaluate.calibration import calibration
from loracompose.evaluate.diversity import diversity
from loracompose.evaluate.ensemble import Verdicts
from loracompose.evaluate.generations import check_direction, read_generations, system_of
from loracompose.evaluate.hf_judge import load_hf_judge
from loracompose.evaluate.panel import VOTE, JudgePanel, JudgeSettings, judge_panel, measure_judge
from loracompose.evaluate.perplexity import continuation_nll, perplexity
from loracompose.evaluate.significance import bootstrap_mean, resampled_means
from loracompose.models import load_base
from loracompose.paths import write_text_atomic
from loracompose.provenance import git_commit

JUDGE_INPUTS = ("full", "continuation")
DEFAULT_REFERENCE = "gemma3-270m"


@dataclass(frozen=True)
class EvalOptions:
    reference: str | None = DEFAULT_REFERENCE  # model spec for perplexity; None skips fluency
    judge_dirs: tuple[str, ...] = ()  # user judges: HF text-classification directories
    judge_input: str = "full"  # "full" (prompt + continuation) or "continuation"
    settings: JudgeSettings = field(default_factory=JudgeSettings)
    batch_size: int = 8  # texts per reference-model forward
    resamples: int = 10_000  # bootstrap resamples for the intervals
    confidence: float = 0.95
    seed: int = 0
    progress: bool = True
    check_directions: bool = False  # refuse a file whose composition steers toward another label than its target
    calibrate: bool = False  # add the panel's calibration on human-written neutral text (sentiment)
    # Perplexity of a fixed subset only: samples 0..K-1 of every prompt and seed (None: every text). The
    # reference forward costs more than judging; the subset is the same in every condition, so paired.
    perplexity_samples: int | None = None

    def __post_init__(self):
        if self.judge_input not in JUDGE_INPUTS:
            raise LoraComposeError(f"unknown judge input '{self.judge_input}'; accepted: {', '.join(JUDGE_INPUTS)}")


def _interval(scores, prompts: list[str], options: EvalOptions) -> dict:
    """Mean with a bootstrap interval that resamples prompts (their samples are correlated)."""
    ci = bootstrap_mean(scores, resamples=options.resamples, confidence=options.confidence, seed=options.seed,
                        groups=prompts)
    return {"value": ci.estimate, "ci": [ci.low, ci.high], "n": int(len(scores))}


def build_panels(targets: dict[str, str], user_judges: list, options: EvalOptions) -> dict[str, JudgePanel]:
    panels = {}
    for attribute in targets:
        if attribute in ATTRIBUTES:
            panels[attribute] = judge_panel(attribute, options.settings, progress=options.progress)
        else:
            panels[attribute] = JudgePanel(attribute, [], [], {}, None)
    for judge in user_judges:
        panel = panels.get(judge.attribute)
        if panel is None:
            continue
        if not panel.labels:
            panel.labels = list(judge.labels)
        panel.judges.append(judge)
        panel.accuracy[judge.name] = measure_judge(judge, options.settings, fingerprint=judge.fingerprint,
                                                   progress=options.progress)
    return panels


def _judge_attribute(panel: JudgePanel, target: str, texts: list[str], prompts: list[str], options: EvalOptions):
    probabilities = []
    for judge in panel.judges:
        if hasattr(judge, "progress"):
            judge.progress = options.progress
        probabilities.append(judge.predict_proba(texts))
    verdicts = Verdicts(panel.labels, [j.name for j in panel.judges], np.stack(probabilities), panel.voting)
    hard, soft = verdicts.hard_hits(target), verdicts.soft_scores(target)
    judges = []
    for judge in panel.judges:
        hits = verdicts.judge_hits(target)[judge.name]
        judges.append({**judge.describe(), "hit_rate": float(hits.mean()),
                       "test_accuracy": panel.accuracy.get(judge.name, {}),
                       "headline_test_accuracy": panel.headline(judge.name), "headline_dataset": panel.primary})
    user_judges = any(j.describe()["kind"] == "hf" for j in panel.judges)
    summary = {"target": target, "labels": panel.labels, "hard_accuracy": _interval(hard, prompts, options),
               "soft_accuracy": _interval(soft, prompts, options), "judges": judges,
               # The built-in judges' majority vote on the test splits (user judges not included).
               "vote_test_accuracy": panel.accuracy.get(VOTE, {}), "vote_includes_user_judges": user_judges,
               "judge_panel": panel.provenance.get("directory")}
    return summary, hard, soft


def reference_nll(record_lists: list[list], base, options: EvalOptions) -> tuple[list, float]:
    """Per list: (NLL, tokens) of its continuations under the reference, scored in one batched pass
    over all lists (so the length-sorted batches fill across files), and the seconds it took."""
    records = [r for rs in record_lists for r in rs]
    start = time.perf_counter()
    nll, tokens = continuation_nll(base.model, base.tokenizer, [r.prompt for r in records],
                                   [r.text for r in records], batch_size=options.batch_size, progress=options.progress)
    seconds = time.perf_counter() - start
    out, at = [], 0
    for rs in record_lists:
        out.append((nll[at: at + len(rs)], tokens[at: at + len(rs)]))
        at += len(rs)
    return out, seconds


def scored_records(records, options: EvalOptions) -> list[int]:
    """Indexes of the records whose perplexity is measured (see `EvalOptions.perplexity_samples`)."""
    k = options.perplexity_samples
    return [i for i, r in enumerate(records) if k is None or r.sample < k]


def fluency_summary(records, nll, tokens, seconds: float, base, options: EvalOptions) -> dict:
    value = perplexity(nll, tokens)
    ci = None
    scored = tokens > 0
    if value is not None and scored.sum() > 1:
        # Ratio bootstrap over prompts: PPL* = exp(ΣNLL* / ΣT*); the same seed and groups draw the
        # same prompts for both sums.
        prompts = [r.prompt for r in records]
        mean_nll = resampled_means(nll, resamples=options.resamples, seed=options.seed, groups=prompts)
        mean_tok = resampled_means(tokens, resamples=options.resamples, seed=options.seed, groups=prompts)
        ppl = np.exp(mean_nll / np.maximum(mean_tok, 1e-12))
        alpha = 1 - options.confidence
        ci = [float(x) for x in np.quantile(ppl, [alpha / 2, 1 - alpha / 2])]
    return {"reference_model": options.reference, "reference_fingerprint": base.fingerprint["id"],
            "reference_source": base.fingerprint["source"], "perplexity": value, "ci": ci,
            "tokens": int(tokens.sum()), "texts": int(scored.sum()),
            "texts_per_second": round(len(nll) / seconds, 2) if seconds > 0 else None}


def known_labels(user_judges) -> dict[str, tuple[str, ...]]:
    known = {a: spec.labels for a, spec in ATTRIBUTES.items()}
    for judge in user_judges:
        known.setdefault(judge.attribute, tuple(judge.labels))
    return known


def load_reference(options: EvalOptions):
    """The reference model for perplexity (None when options.reference is None), loaded once per call
    of the evaluation — pass it on to score several files with one load."""
    if not options.reference:
        return None
    return load_base(options.reference, quantize=None)


def evaluate_generations(path: str | Path, targets: str | dict[str, str],
                         options: EvalOptions = EvalOptions(), reference=None) -> dict:
    """All metrics of one generations file, as a JSON-ready dict (see the module docstring).

    `reference`: an already loaded reference model (a `BaseModel`) to reuse; else options.reference
    is loaded here.
    """
    records = read_generations(path)
    user_judges = [load_hf_judge(d, options.settings.max_words) for d in options.judge_dirs]
    known = known_labels(user_judges)
    if isinstance(targets, str):
        targets = parse_targets(targets, known)
    else:
        parse_targets(",".join(f"{a}={label}" for a, label in targets.items()), known)
    if options.check_directions:
        for attribute, label in targets.items():
            check_direction(records, path, attribute, label, known[attribute])
    if reference is None:  # loaded before the judges run, so a bad spec fails at once
        reference = load_reference(options)
    panels = build_panels(targets, user_judges, options)
    fluency = None
    if reference is not None:
        scored = scored_records(records, options)
        subset = [records[i] for i in scored]
        [(nll, tokens)], seconds = reference_nll([subset], reference, options)
        summary = fluency_summary(subset, nll, tokens, seconds, reference, options)
        fluency = (dict(zip(scored, nll)), dict(zip(scored, tokens)), summary)
    metrics = records_metrics(path, records, targets, panels, fluency, options)
    if options.calibrate:
        metrics["calibration"] = calibration(panels, options)
    return metrics


def records_metrics(path, records, targets: dict[str, str], panels: dict[str, JudgePanel], fluency,
                    options: EvalOptions) -> dict:
    """The metrics dict of one file's records; `fluency` is (nll, tokens, summary) or None, with nll and
    tokens by record index (the records whose perplexity was measured)."""
    texts = [r.prompt + r.text if options.judge_input == "full" else r.text for r in records]
    prompts = [r.prompt for r in records]
    attributes, hard, soft = {}, {}, {}
    start = time.perf_counter()
    for attribute, target in targets.items():
        attributes[attribute], hard[attribute], soft[attribute] = _judge_attribute(
            panels[attribute], target, texts, prompts, options)
    judge_seconds = time.perf_counter() - start
    joint = np.all(np.stack([hard[a] for a in targets]), axis=0)

    metrics: dict = {
        "generations": {"path": str(Path(path).resolve()),
                        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
                        "records": len(records), "prompts": len({r.prompt for r in records}),
                        "system": json.loads(system_of(records[0].extra))},
        "targets": targets,
        "attributes": attributes,
        "joint_hard_accuracy": _interval(joint, prompts, options) if len(targets) > 1 else None,
    }
    nll, tokens, metrics["fluency"] = fluency if fluency is not None else (None, None, None)
    metrics["diversity"] = diversity([r.prompt for r in records], [r.text for r in records]).as_dict()
    metrics["throughput"] = {"judged_texts_per_second": round(len(records) / judge_seconds, 2)
                             if judge_seconds > 0 else None}
    metrics["provenance"] = {
        "loracompose": __version__, "git_commit": git_commit(), "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "judge_input": options.judge_input,
        "settings": asdict(options.settings), "bootstrap": {"resamples": options.resamples,
                                                            "confidence": options.confidence, "seed": options.seed},
        "judge_panels": {a: panels[a].provenance for a in targets},
    }
    metrics["samples"] = [
        {"prompt": r.prompt, "sample": r.sample, "seed": r.seed,
         "hits": {a: bool(hard[a][i]) for a in targets},
         "soft": {a: round(float(soft[a][i]), 6) for a in targets},
         **({"nll": float(nll[i]), "tokens": int(tokens[i])} if nll is not None and i in nll else {})}
        for i, r in enumerate(records)
    ]
    return metrics


def write_metrics(metrics: dict, out: str | Path) -> Path:
    """Write metrics.json atomically (a crash leaves no half-written file)."""
    return write_text_atomic(out, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
