"""Both directions: steering toward each label of an attribute from the same prompts, and the mean.

The field reports sentiment control as two numbers and their mean (DExperts; the study's
authors' comparison, arXiv 2605.12395): the share of continuations judged positive when
steering toward positive, the share judged negative when steering toward negative, each from
the same prompts. One direction alone cannot tell a module from a judge that leans one way.

    per direction d   the metrics of one generations file evaluated for attribute=d (see metrics.py)
    mean              (1/D) Σ_d hard_d, and the same for soft accuracy, with a bootstrap interval
                      that draws the same prompts for every direction (significance.py)
    calibration       the panel's vote shares on human-written neutral text and on `baseline`
                      generations (calibration.py)

Checks, each with one message and before any work: every label is one of the attribute's;
at least two directions; every file holds the same prompts; no file's composition steers
toward another label than the direction it is given as (generations.check_direction). The
same file may be given for every direction (the base model: its mean is then exactly 0.5
when the panel has two labels, whatever it leans).

Perplexity is scored in one batched pass over every distinct file, with the reference model
loaded once.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from loracompose import __version__
from loracompose.errors import LoraComposeError
from loracompose.evaluate.calibration import calibration, vote_shares
from loracompose.evaluate.generations import check_direction, read_generations
from loracompose.evaluate.hf_judge import load_hf_judge
from loracompose.evaluate.metrics import (EvalOptions, fluency_summary, build_panels, known_labels, load_reference,
                                          records_metrics, reference_nll, scored_records)
from loracompose.evaluate.significance import bootstrap_mean_of_means
from loracompose.provenance import git_commit

KIND = "directions"


def _check(files: dict[str, str | Path], attribute: str, others: dict[str, str], known: dict) -> None:
    if attribute not in known:
        raise LoraComposeError(f"unknown attribute '{attribute}'; accepted: {', '.join(known)}")
    for label in files:
        if label not in known[attribute]:
            raise LoraComposeError(f"unknown label '{label}' for attribute '{attribute}'; its labels are "
                                   f"{', '.join(known[attribute])}")
    if len(files) < 2:
        given = ", ".join(files) or "none"
        raise LoraComposeError(
            f"a {attribute} evaluation reports both directions: give generations for at least two labels of "
            f"{', '.join(known[attribute])} (given: {given}), e.g. --positive pos.jsonl --negative neg.jsonl")
    if attribute in others:
        raise LoraComposeError(f"attribute '{attribute}' is both the steered attribute and a fixed --target")


def _same_prompts(records: dict[str, list], files: dict[str, str | Path]) -> None:
    labels = list(records)
    first = {r.prompt for r in records[labels[0]]}
    for label in labels[1:]:
        prompts = {r.prompt for r in records[label]}
        if prompts != first:
            only = sorted(prompts ^ first)
            raise LoraComposeError(
                f"'{files[label]}' ({label}) and '{files[labels[0]]}' ({labels[0]}) hold different prompts "
                f"({len(only)} in one only, e.g. {only[0][:40]!r}); both directions must come from the same prompts")


def evaluate_directions(files: dict[str, str | Path], attribute: str = "sentiment", others: dict[str, str] = None,
                        options: EvalOptions = EvalOptions(), baseline: str | Path | None = None,
                        reference=None) -> dict:
    """Metrics of each direction's generations file, their mean and the calibration (module docstring).

    `files`: label → generations file steered toward that label; `others`: fixed targets of other
    attributes that every direction shares (e.g. {"topic": "sport"}); `baseline`: a generations
    file whose vote shares join the calibration (e.g. the base model on the same prompts).
    """
    others = dict(others or {})
    user_judges = [load_hf_judge(d, options.settings.max_words) for d in options.judge_dirs]
    known = known_labels(user_judges)
    _check(files, attribute, others, known)
    for other, label in others.items():
        if other not in known or label not in known[other]:
            raise LoraComposeError(f"unknown target {other}={label}; accepted: "
                                   + "; ".join(f"{a}: {', '.join(ls)}" for a, ls in known.items()))
    records = {label: read_generations(path) for label, path in files.items()}
    for label, path in files.items():
        check_direction(records[label], path, attribute, label, known[attribute])
        for other, other_label in others.items():
            check_direction(records[label], path, other, other_label, known[other])
    _same_prompts(records, files)
    base_records = read_generations(baseline) if baseline is not None else None
    if reference is None:
        reference = load_reference(options)
    panels = build_panels({attribute: next(iter(files)), **others}, user_judges, options)

    fluency: dict[str, tuple] = {}
    rate = None
    if reference is not None:  # one batched pass over every distinct file
        paths = {label: str(Path(p).resolve()) for label, p in files.items()}
        distinct = {path: label for label, path in reversed(list(paths.items()))}  # path → a label given it
        chosen = {label: scored_records(records[label], options) for label in distinct.values()}
        subsets = {label: [records[label][i] for i in chosen[label]] for label in distinct.values()}
        scored, seconds = reference_nll(list(subsets.values()), reference, options)
        total = sum(len(subset) for subset in subsets.values())
        rate = round(total / seconds, 2) if seconds > 0 else None
        for (path, label), (nll, tokens) in zip(distinct.items(), scored):
            summary = fluency_summary(subsets[label], nll, tokens, seconds, reference, options)
            fluency[path] = (dict(zip(chosen[label], nll)), dict(zip(chosen[label], tokens)),
                             {**summary, "texts_per_second": rate})
    directions = {}
    for label, path in files.items():
        directions[label] = records_metrics(path, records[label], {attribute: label, **others}, panels,
                                            fluency.get(str(Path(path).resolve())), options)
    result = {"kind": KIND, "attribute": attribute, "others": others, "directions": directions,
              "mean": direction_mean(directions, attribute, options),
              "calibration": calibration(panels, options) if options.calibrate or baseline else None,
              "baseline": None}
    if base_records is not None:
        panel = panels[attribute]
        texts = [r.prompt + r.text if options.judge_input == "full" else r.text for r in base_records]
        result["baseline"] = {"path": str(Path(baseline).resolve()), "prompts": len({r.prompt for r in base_records}),
                              **vote_shares(panel, texts)}
    result["provenance"] = {"loracompose": __version__, "git_commit": git_commit(),
                            "python": platform.python_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "perplexity_texts_per_second": rate}
    return result


def _hits(metrics: dict, attribute: str, joint: bool) -> tuple[list, list, list]:
    samples = metrics["samples"]
    hard = [float(all(s["hits"].values()) if joint else s["hits"][attribute]) for s in samples]
    soft = [s["soft"][attribute] for s in samples]
    return hard, soft, [s["prompt"] for s in samples]


def direction_mean(directions: dict[str, dict], attribute: str, options: EvalOptions) -> dict:
    """The mean over directions of hard accuracy (joint when other attributes are fixed) and of soft
    accuracy, each with a bootstrap interval drawing the same prompts for every direction."""
    joint = any(len(m["targets"]) > 1 for m in directions.values())
    parts = [_hits(m, attribute, joint) for m in directions.values()]
    out = {"directions": list(directions), "hard_is_joint": joint}
    for i, name in ((0, "hard_accuracy"), (1, "soft_accuracy")):
        ci = bootstrap_mean_of_means([p[i] for p in parts], [p[2] for p in parts], resamples=options.resamples,
                                     confidence=options.confidence, seed=options.seed)
        out[name] = {"value": ci.estimate, "ci": [ci.low, ci.high], "n": sum(len(p[i]) for p in parts)}
    return out


def is_directions(metrics: dict) -> bool:
    return isinstance(metrics, dict) and metrics.get("kind") == KIND
