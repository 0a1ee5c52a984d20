"""Composition methods: a registry from name to method, one small file per family.

    level     method            what it computes (module i: ΔW_i = s_i·B_i·A_i, weight w_i)
    weight    delta-sum         one adapter holding exactly Σ w_i·ΔW_i (rank Σ r_i)
    weight    delta-svd         Σ w_i·ΔW_i truncated to rank k by SVD
    weight    weights-average   average of A's and of B's (PEFT `linear`; the paper's WeightsAverage)
    weight    ties, dare-linear, dare-ties, magnitude-prune   PEFT's merges of A and B
    output    output-sum        y = W0·x + Σ w_i·s_i·B_i·A_i·x at every layer (the paper's Sum)
    output    output-mean       the same with w normalised to Σ w_i = 1
    decoding  logit-sum         log p(x) ∝ Σ_k λ_k·log p_k(x), members = modules (+ base)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from loracompose.compose import weight_methods as wm
from loracompose.errors import LoraComposeError


@dataclass(frozen=True)
class Method:
    name: str
    level: str  # "weight" | "output" | "decoding"
    summary: str
    merge: Callable | None = None  # weight level: (modules, weights, layers, MergeOptions) → {layer: LoraPair}
    normalize: bool = False  # weights rescaled to sum to 1 before use


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("output-sum", "output", "sum of module outputs at every layer (the paper's best)"),
        Method("output-mean", "output", "output-sum with weights normalised to sum 1", normalize=True),
        Method("logit-sum", "decoding", "product of experts: weighted sum of members' log-probabilities"),
        Method("delta-sum", "weight", "exact weighted sum of ΔW as one rank-Σr adapter", wm.delta_sum),
        Method("delta-svd", "weight", "weighted sum of ΔW truncated by SVD", wm.delta_svd),
        Method("weights-average", "weight", "average A and B separately (PEFT linear; not Σ ΔW)",
               wm.weights_average, normalize=True),
        Method("ties", "weight", "TIES merge of A and B (PEFT)", wm.ties),
        Method("dare-linear", "weight", "DARE drop-and-rescale, linear (PEFT)", wm.dare_linear),
        Method("dare-ties", "weight", "DARE drop-and-rescale with TIES sign election (PEFT)", wm.dare_ties),
        Method("magnitude-prune", "weight", "keep the largest entries, then sum (PEFT)", wm.magnitude_prune),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise LoraComposeError(f"unknown method '{name}'; accepted: {', '.join(METHODS)}")
    return METHODS[name]


def parse_composition(text: str) -> dict[str, float]:
    """'positive@imdb=1,sport@bbc=0.8' → {'positive@imdb': 1.0, 'sport@bbc': 0.8}; a bare name weighs 1."""
    composition: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        try:
            composition[name.strip()] = float(value) if value else 1.0
        except ValueError:
            raise LoraComposeError(
                f"bad composition entry '{part}': expected NAME=WEIGHT with a number, e.g. positive@imdb=0.8"
            ) from None
    if not composition:
        raise LoraComposeError("empty composition; expected NAME=WEIGHT[,NAME=WEIGHT...]")
    return composition


def normalized(composition: dict[str, float]) -> dict[str, float]:
    total = sum(composition.values())
    if abs(total) < 1e-12:
        raise LoraComposeError("weights sum to 0 and cannot be normalised to a mean; use a sum method instead")
    return {name: w / total for name, w in composition.items()}
