"""The composition methods' registry: each entry carries its behaviour, so a new method is one entry
plus its function.

    level     method            what it computes (module i: ΔW_i = s_i·B_i·A_i, weight w_i)
    weight    delta-sum         one adapter holding exactly Σ w_i·ΔW_i (rank Σ r_i)
    weight    delta-svd         Σ w_i·ΔW_i truncated to rank k by SVD
    weight    weights-average   average of A's and of B's (PEFT `linear`; the paper's WeightsAverage)
    weight    ties, dare-linear, dare-ties, magnitude-prune   PEFT's merges of A and B
    output    output-sum        y = W0·x + Σ w_i·s_i·B_i·A_i·x at every layer (the paper's Sum)
    output    output-mean       the same with w normalised to Σ w_i = 1
    decoding  logit-sum         log p(x) ∝ Σ_k λ_k·log p_k(x), members = modules (+ base)

What each level means to the one planner (`compose.plan`), per sequence over a bank of N modules:

    output    one member row w (1, N) = method.prepare(composition); no coefficients
    decoding  K member rows (K, N) and coefficients λ (K,) = method.members(composition)
    weight    method.merge(...) builds one new adapter ("merged"); one row [1] over it

Levels `output` and `decoding` run per sequence inside one fused bank, so the server runs them
per request (`SERVED_METHODS`); a weight-level method builds a new adapter first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from loracompose.compose import weight_methods as wm
from loracompose.errors import LoraComposeError

BASE_MEMBER = "base"  # logit-sum: the name of the bare base model as a member
LEVELS = ("weight", "output", "decoding")

Weights = dict[str, float]


def unchanged(composition: Weights) -> Weights:
    return dict(composition)


def normalized(composition: Weights) -> Weights:
    """w_i / Σ_j w_j; refused when Σ w = 0 (no mean exists)."""
    total = sum(composition.values())
    if abs(total) < 1e-12:
        raise LoraComposeError("weights sum to 0 and cannot be normalised to a mean; use a sum method instead")
    return {name: w / total for name, w in composition.items()}


def product_of_experts(composition: Weights) -> tuple[list[Weights], list[float]]:
    """logit-sum's members: ([member compositions], [λ]) with log p ∝ Σ_k λ_k·log p_k.

    Member 0 is the bare base (the empty composition) when `base` is named, then one one-hot
    member per named module, in the composition's order; members with λ = 0 are dropped, so
    they are not run at all.
    """
    names = [BASE_MEMBER] * (BASE_MEMBER in composition) + [n for n in composition if n != BASE_MEMBER]
    active = [n for n in names if composition[n] != 0]
    if not active:
        raise LoraComposeError("logit-sum needs at least one member with a non-zero weight")
    return [{} if n == BASE_MEMBER else {n: 1.0} for n in active], [float(composition[n]) for n in active]


@dataclass(frozen=True)
class Method:
    """A composition method and its behaviour.

    prepare   output and weight level: the weights actually applied, from the user's (e.g. normalised)
    merge     weight level: (modules, weights, layers, MergeOptions) → {layer: LoraPair} at scale 1
    members   decoding level: composition → ([member compositions], [λ_k])
    """

    name: str
    level: str  # "weight" | "output" | "decoding"
    summary: str
    merge: Callable | None = None
    prepare: Callable[[Weights], Weights] = unchanged
    members: Callable[[Weights], tuple[list[Weights], list[float]]] | None = None

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"method {self.name}: level must be one of {LEVELS}")
        if (self.level == "weight") != (self.merge is not None):
            raise ValueError(f"method {self.name}: a merge function exactly when the level is 'weight'")
        if (self.level == "decoding") != (self.members is not None):
            raise ValueError(f"method {self.name}: a members function exactly when the level is 'decoding'")

    @property
    def per_sequence(self) -> bool:
        """Runs inside one fused bank with a composition per sequence (what the server runs per request)."""
        return self.level != "weight"

    @property
    def takes_base_member(self) -> bool:
        return self.level == "decoding"


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("output-sum", "output", "sum of module outputs at every layer (the paper's best)"),
        Method("output-mean", "output", "output-sum with weights normalised to sum 1", prepare=normalized),
        Method("logit-sum", "decoding", "product of experts: weighted sum of members' log-probabilities",
               members=product_of_experts),
        Method("delta-sum", "weight", "exact weighted sum of ΔW as one rank-Σr adapter", wm.delta_sum),
        Method("delta-svd", "weight", "weighted sum of ΔW truncated by SVD", wm.delta_svd),
        Method("weights-average", "weight", "average A and B separately (PEFT linear; not Σ ΔW)",
               wm.weights_average, prepare=normalized),
        Method("ties", "weight", "TIES merge of A and B (PEFT)", wm.ties),
        Method("dare-linear", "weight", "DARE drop-and-rescale, linear (PEFT)", wm.dare_linear),
        Method("dare-ties", "weight", "DARE drop-and-rescale with TIES sign election (PEFT)", wm.dare_ties),
        Method("magnitude-prune", "weight", "keep the largest entries, then sum (PEFT)", wm.magnitude_prune),
    ]
}
SERVED_METHODS: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.per_sequence)
WEIGHT_METHODS: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.level == "weight")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise LoraComposeError(f"unknown method '{name}'; accepted: {', '.join(METHODS)}")
    return METHODS[name]


def parse_composition(text: str) -> Weights:
    """'positive@imdb=1,sport@bbc=0.8' → {'positive@imdb': 1.0, 'sport@bbc': 0.8}; a bare name weighs 1."""
    composition: Weights = {}
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
