"""The one composition planner: (composition, method) → what a sequence runs, for generation, experiments
and the server alike.

A plan is validated once, independently of any bank; its member rows are then read against the fused
bank that runs them (`CompositionPlan.rows`):

    level     members (K compositions over module names)           coefficients   rows over a bank of N
    (none)    ()  — the bare base                                  None           None
    output    (method.prepare(w),)                                  None           (1, N)
    decoding  method.members(w): [base →] one one-hot per module    λ (K,)         (K, N)
    weight    ({"merged": 1},) over the adapter method.merge builds None           (1, 1)

`fused_for` builds the ComposedModel that one call of `loracompose generate` needs (only the named
modules, or the one merged adapter); the server keeps every module in one bank and only asks for rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from loracompose.compose.bank import ModuleBank
from loracompose.compose.fused import ComposedModel
from loracompose.compose.merge import merge_prepared, merged_module
from loracompose.compose.methods import BASE_MEMBER, Method, Weights, get_method
from loracompose.compose.weight_methods import MergeOptions
from loracompose.errors import LoraComposeError

MERGED = "merged"  # the name of a weight-level plan's one adapter


@dataclass(frozen=True)
class CompositionPlan:
    method: Method
    composition: Weights  # as the user gave it (what records carry)
    weights: Weights  # as applied: method.prepare(composition) (output and weight level)
    members: tuple[Weights, ...]  # K member compositions; () = the bare base
    coefficients: tuple[float, ...] | None  # decoding: λ_k per member; None otherwise

    @property
    def modules(self) -> list[str]:
        """The bank modules the plan reads, in the composition's order (`base` is not a module)."""
        return [name for name in self.composition if name != BASE_MEMBER]

    @property
    def is_base(self) -> bool:
        return not self.members

    def rows(self, composed: ComposedModel) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(member rows (K, N) over `composed`'s bank, coefficients λ (K,)); (None, None) for the bare base."""
        if self.is_base:
            return None, None
        rows = composed.weights_for(list(self.members))
        return rows, None if self.coefficients is None else torch.tensor(self.coefficients)


def plan_composition(composition: Weights, method_name: str) -> CompositionPlan:
    """Validate `composition` under `method_name` and plan it (no bank needed; names are checked where
    the bank is). Raises LoraComposeError with the accepted alternatives."""
    method = get_method(method_name)
    composition = {name: float(weight) for name, weight in composition.items()}
    if not composition:
        return CompositionPlan(method, {}, {}, (), None)
    if BASE_MEMBER in composition and not method.takes_base_member:
        raise LoraComposeError(f"'{BASE_MEMBER}' is a member only for logit-sum; for {method.name} the base "
                               "is always there (weight all modules 0 for the base alone)")
    if method.level == "decoding":
        members, coefficients = method.members(composition)
        return CompositionPlan(method, composition, {}, tuple(members), tuple(coefficients))
    try:
        weights = method.prepare(composition)
    except LoraComposeError as exc:  # e.g. "output-mean weights sum to 0 …"
        raise LoraComposeError(f"{method.name} {exc}") from None
    members = ({MERGED: 1.0},) if method.level == "weight" else (weights,)
    return CompositionPlan(method, composition, weights, members, None)


def fused_for(plan: CompositionPlan, model: nn.Module, bank: ModuleBank, layer_order: list[str],
              options: MergeOptions = MergeOptions()) -> ComposedModel:
    """The fused model one generation call runs: only the plan's modules, or its one merged adapter.
    `layer_order` is the base model's layer order (dare draws its masks layer by layer in that order)."""
    if plan.method.level == "weight" and not plan.is_base:
        pairs = merge_prepared(bank, plan.weights, plan.method, layer_order, options)
        return ComposedModel(model, ModuleBank.from_loaded([merged_module(pairs, MERGED)]))
    return ComposedModel(model, ModuleBank.from_loaded([bank[name] for name in plan.modules]))
