"""The numbers of the report, computed from the results database's per-sample rows.

A *system* is one (model, task, prompt set, target, condition); its samples are
pooled over seeds. For a system with n samples:

    hard accuracy  mean of the per-sample hits (for several attributes: every attribute hit)
    soft accuracy  mean of the per-sample mean over attributes of P(target | text)
    perplexity     exp(Σ NLL / Σ tokens) over the samples whose NLL was measured (token-weighted): all of
                   them, or the spec's `evaluate.perplexity_samples` subset, the same in every condition
    distinct-2     `evaluate.diversity` over the pooled continuations: per prompt, then averaged; over
                   the same number of samples per prompt and seed in every condition of a task set

Intervals are cluster-bootstrap percentile intervals that resample prompts
(`evaluate.significance.bootstrap_mean`). Against a baseline system the
samples are paired on (prompt, sample, seed); the exact McNemar p-values of one
table form one family, Holm-adjusted (`significance.holm`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from loracompose.evaluate.diversity import diversity
from loracompose.evaluate.perplexity import perplexity
from loracompose.evaluate.significance import (bootstrap_mean, bootstrap_mean_of_means, holm, mcnemar_exact,
                                              paired_bootstrap)

RESAMPLES = 2000


@dataclass
class System:
    model: str
    task: str
    prompt_set: str
    target: str
    condition: str
    samples: list[dict] = field(default_factory=list)

    def hits(self) -> np.ndarray:
        return np.array([all(s["hits"].values()) for s in self.samples], dtype=float)

    def soft(self) -> np.ndarray:
        return np.array([float(np.mean(list(s["soft"].values()))) for s in self.samples])

    def prompts(self) -> list[str]:
        return [s["prompt"] for s in self.samples]

    def keyed(self) -> dict:
        return {(s["prompt"], s["sample"], s["seed"]): s for s in self.samples}


@dataclass
class Summary:
    hard: float
    hard_ci: tuple[float, float]
    soft: float
    soft_ci: tuple[float, float]
    perplexity: float | None
    distinct_2: float | None
    n: int
    seeds: int
    n_perplexity: int = 0  # samples whose perplexity was measured


def samples_per_prompt(system: System) -> int:
    """Continuations per (prompt, seed): the highest sample index + 1."""
    return 1 + max(s["sample"] for s in system.samples)


def summarize(system: System, diversity_samples: int | None = None) -> Summary:
    """The system's figures; distinct-2 over samples 0 … `diversity_samples` − 1 of each prompt and seed
    when given (distinct-n falls as a prompt's continuations grow in number, so conditions are compared
    on the same count), else over all."""
    hits, soft, prompts = system.hits(), system.soft(), system.prompts()
    hard_ci = bootstrap_mean(hits, resamples=RESAMPLES, groups=prompts)
    soft_ci = bootstrap_mean(soft, resamples=RESAMPLES, groups=prompts)
    ppl, n_perplexity = measured_perplexity(system.samples)
    varied = [s for s in system.samples if diversity_samples is None or s["sample"] < diversity_samples]
    d2 = diversity([s["prompt"] for s in varied], [s["text"] or "" for s in varied]).as_dict()["distinct_2"]
    return Summary(float(hits.mean()), (hard_ci.low, hard_ci.high), float(soft.mean()), (soft_ci.low, soft_ci.high),
                   ppl, d2, len(hits), len({s["seed"] for s in system.samples}), n_perplexity)


def measured_perplexity(samples: list[dict]) -> tuple[float | None, int]:
    """exp(Σ NLL / Σ tokens) over the samples whose NLL was measured (None if none was), and their count."""
    measured = [s for s in samples if s.get("nll") is not None]
    if not measured:
        return None, 0
    return perplexity([s["nll"] for s in measured], [s.get("tokens") or 0 for s in measured]), len(measured)


def direction_mean(systems: list[System]) -> tuple[float, tuple[float, float]] | None:
    """Mean over directions (one system per target, the same prompts) of hard accuracy, with a bootstrap
    interval that draws the same prompts in every direction; None when their prompts differ."""
    prompts = [s.prompts() for s in systems]
    if any(set(p) != set(prompts[0]) for p in prompts):
        return None
    ci = bootstrap_mean_of_means([s.hits() for s in systems], prompts, resamples=RESAMPLES)
    return ci.estimate, (ci.low, ci.high)


def pooled(systems: list[System], target: str) -> System:
    """One system from several directions' systems on the same prompts (e.g. → positive and → negative):
    its hard accuracy is their mean when their n are equal, its samples stay clustered by prompt (a
    prompt's continuations in every direction are drawn together), and `keyed` pairs a sample with the
    same direction's sample of another pooled system (the direction joins the sample number)."""
    first = systems[0]
    samples = [{**s, "sample": (system.target, s["sample"])} for system in systems for s in system.samples]
    return System(first.model, first.task, first.prompt_set, target, first.condition, samples)


@dataclass
class Test:
    difference: float  # hard accuracy, other − baseline, on the paired samples
    ci: tuple[float, float]
    p: float  # exact McNemar
    p_holm: float | None = None
    pairs: int = 0


def paired_test(baseline: System, other: System) -> Test | None:
    a, b = baseline.keyed(), other.keyed()
    keys = [k for k in b if k in a]
    if not keys:
        return None
    hit = lambda s: float(all(s["hits"].values()))  # noqa: E731
    x, y = np.array([hit(a[k]) for k in keys]), np.array([hit(b[k]) for k in keys])
    ci = paired_bootstrap(x, y, resamples=RESAMPLES, groups=[k[0] for k in keys])
    return Test(ci.estimate, (ci.low, ci.high), mcnemar_exact(x, y).p_value, pairs=len(keys))


def adjust(tests: list[Test | None]) -> None:
    """Holm-adjust a family of tests in place."""
    present = [t for t in tests if t is not None]
    for test, p in zip(present, holm([t.p for t in present])):
        test.p_holm = p


def load_systems(store, experiment: str) -> dict[tuple, System]:
    """(model, task, prompt_set, target, condition) → System with its samples (all seeds)."""
    systems: dict[tuple, System] = {}
    for s in store.samples(experiment=experiment):
        key = (s["model"], s["task"], s["prompt_set"], s["target"], s["condition"])
        systems.setdefault(key, System(*key)).samples.append(s)
    return systems


def baseline_condition(conditions: list[str], prompt_set: str, hard: dict[str, float] | None = None) -> str | None:
    """The single-dataset module of the prompt set's dataset; else the single module with the highest hard
    accuracy in `hard` (condition → accuracy; the strictest baseline for a composition), or the first
    one; else the base."""
    own = f"single:{prompt_set.split(':', 1)[1]}" if prompt_set.startswith("heldout:") else None
    if own in conditions:
        return own
    singles = [c for c in conditions if c.startswith("single:")]
    if singles:
        return max(singles, key=lambda c: (hard or {}).get(c, 0.0)) if hard else singles[0]
    return "base" if "base" in conditions else None


def ordered(values, order=None) -> list:
    values = list(dict.fromkeys(values))
    if order:
        return sorted(values, key=lambda v: (order.index(v) if v in order else len(order), v))
    return values


def json_or_empty(text: str | None) -> dict:
    return json.loads(text) if text else {}
