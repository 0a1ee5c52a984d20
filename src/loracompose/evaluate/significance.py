"""Paired significance tests for two systems evaluated on the same prompts and seeds.

Exact McNemar test. Of n paired samples, let b = #(A hit, B miss) and
c = #(A miss, B hit). Under H0 (both systems equally accurate) each discordant
pair is equally likely to go either way, so b ~ Binomial(b + c, 1/2) and

    p = min(1, 2 · Σ_{k=0}^{min(b,c)} C(b+c, k) / 2^(b+c))      (p = 1 when b + c = 0)

— the two-sided binomial test (scipy.stats.binomtest(b, b + c, 0.5)), computed
here with exact integers.

Paired bootstrap of a difference of means. With per-sample scores a_i, b_i
(hits 0/1 or target probabilities), resample the n pairs with replacement R
times, take d* = mean(b*) − mean(a*) each time, and report the percentile
interval [q_{α/2}, q_{1−α/2}] of d*. Pairs are resampled as units, so what
the two systems share (the prompt, the seed) cancels. With `groups` (evaluate
and compare pass the prompt) whole groups are resampled instead — a cluster
bootstrap: continuations of one prompt are correlated, and resampling them as
if independent would make the interval too narrow. The resampled statistic is
then Σ_{g drawn} Σ_{i∈g} d_i / Σ_{g drawn} |g|. (McNemar's test still treats
the pairs as independent.)

Holm–Bonferroni over a family of m tests. Sort the p-values ascending
p_(1) ≤ … ≤ p_(m); the adjusted values are

    p̃_(i) = min(1, max_{j ≤ i} (m − j + 1) · p_(j))

and reject H0_(i) when p̃_(i) ≤ α. It controls the family-wise error rate at α
under any dependence between the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np

from loracompose.errors import LoraComposeError


@dataclass(frozen=True)
class McNemar:
    a_only: int  # b: A hit, B missed
    b_only: int  # c: B hit, A missed
    p_value: float


def mcnemar_exact(a_hits, b_hits) -> McNemar:
    """Exact (binomial) McNemar test on paired boolean hits."""
    a, b = np.asarray(a_hits, dtype=bool), np.asarray(b_hits, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise LoraComposeError(f"McNemar needs two equally long lists of paired hits, got {a.shape} and {b.shape}")
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    n = a_only + b_only
    if n == 0:
        return McNemar(a_only, b_only, 1.0)
    tail = sum(comb(n, k) for k in range(min(a_only, b_only) + 1))
    # Exact integers, one correctly rounded division: no underflow for large n.
    p = min(1.0, 2 * tail / 2**n)
    return McNemar(a_only, b_only, p)


@dataclass(frozen=True)
class BootstrapInterval:
    estimate: float  # the observed mean (one system) or mean(b) − mean(a) (paired)
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int


def resampled_means(values, *, resamples: int, seed: int, groups=None) -> np.ndarray:
    """Means of `resamples` seeded bootstrap resamples of `values` (with replacement).

    With `groups` (one label per value) whole groups are drawn: each resample
    takes G groups out of the G present and averages every value in them.
    """
    values = np.asarray(values, dtype=float)
    if groups is None:
        sums, counts = values, np.ones_like(values)
    else:
        first_seen: dict = {}
        codes = np.array([first_seen.setdefault(str(g), len(first_seen)) for g in groups])  # in order of appearance
        sums, counts = np.bincount(codes, weights=values), np.bincount(codes).astype(float)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // sums.size)  # bounded memory: at most ~2M indices at a time
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, sums.size, size=(stop - start, sums.size))
        means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    return means


def _interval(estimate: float, means: np.ndarray, confidence: float, seed: int) -> BootstrapInterval:
    if not 0 < confidence < 1:
        raise LoraComposeError(f"confidence {confidence} must lie strictly between 0 and 1")
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return BootstrapInterval(float(estimate), float(low), float(high), confidence, means.size, seed)


def bootstrap_mean(scores, *, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                   groups=None) -> BootstrapInterval:
    """Percentile interval of the mean of one system's per-sample scores (groups: cluster bootstrap)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise LoraComposeError("the bootstrap needs a non-empty list of scores")
    _check_groups(groups, x.size)
    return _interval(x.mean(), resampled_means(x, resamples=resamples, seed=seed, groups=groups), confidence, seed)


def paired_bootstrap(a_scores, b_scores, *, resamples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0, groups=None) -> BootstrapInterval:
    """Percentile interval of mean(b) − mean(a), resampling the pairs, or with `groups` whole
    groups of pairs (seeded, reproducible)."""
    a, b = np.asarray(a_scores, dtype=float), np.asarray(b_scores, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise LoraComposeError(f"the bootstrap needs two equally long, non-empty score lists, got {a.shape} and {b.shape}")
    _check_groups(groups, a.size)
    diff = b - a
    return _interval(diff.mean(), resampled_means(diff, resamples=resamples, seed=seed, groups=groups),
                     confidence, seed)


def bootstrap_mean_of_means(score_lists, group_lists, *, resamples: int = 10_000, confidence: float = 0.95,
                            seed: int = 0) -> BootstrapInterval:
    """Percentile interval of (1/D)·Σ_d mean(scores_d) over D lists that share their groups.

    The D lists are the directions of one evaluation (toward positive, toward negative), each
    from the same prompts; the groups are those prompts. A resample draws G prompts out of the
    G present, once for all lists, and averages each list's scores over the drawn prompts'
    samples, then the D means. Given per-pair differences it is the interval of a Δ of means.
    Every list must hold every prompt (else a draw could leave a list empty).
    """
    scores = [np.asarray(s, dtype=float) for s in score_lists]
    if not scores or len(scores) != len(group_lists) or any(s.ndim != 1 or s.size == 0 for s in scores):
        raise LoraComposeError("the bootstrap of a mean of means needs non-empty score lists, each with its groups")
    for s, g in zip(scores, group_lists):
        _check_groups(g, s.size)
    labels = sorted({str(g) for groups in group_lists for g in groups})
    if any({str(g) for g in groups} != set(labels) for groups in group_lists):
        raise LoraComposeError("the lists of a mean of means must hold the same groups (prompts)")
    code = {g: i for i, g in enumerate(labels)}
    codes = [np.array([code[str(g)] for g in groups]) for groups in group_lists]
    sums = np.stack([np.bincount(c, weights=s, minlength=len(labels)) for c, s in zip(codes, scores)])  # (D, G)
    counts = np.stack([np.bincount(c, minlength=len(labels)).astype(float) for c in codes])  # (D, G)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // (len(labels) * len(scores)))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, len(labels), size=(stop - start, len(labels)))  # (R, G) drawn prompts
        means[start:stop] = (sums[:, idx].sum(-1) / counts[:, idx].sum(-1)).mean(axis=0)  # (D, R) → (R,)
    estimate = float(np.mean([s.mean() for s in scores]))
    return _interval(estimate, means, confidence, seed)


def _check_groups(groups, n: int) -> None:
    if groups is not None and len(groups) != n:
        raise LoraComposeError(f"bootstrap groups must label every score: {len(groups)} labels for {n} scores")


def holm(p_values) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given."""
    p = [float(x) for x in p_values]
    if any(not 0 <= x <= 1 for x in p):
        raise LoraComposeError(f"p-values must lie in [0, 1], got {p}")
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted
