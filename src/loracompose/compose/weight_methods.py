"""Weight-level composition: merge modules into one new LoRA adapter.

Notation: module i has, at a layer, ΔW_i = s_i·B_i·A_i and composition weight w_i.
Every method returns, per layer, one pair (A, B) with scale 1, so the new adapter
computes y = W0·x + B·A·x.

  delta-sum        exact Σ_i w_i·ΔW_i, stored losslessly at rank Σ r_i:
                   A = [w_1 s_1 A_1; …; w_N s_N A_N],  B = [B_1 … B_N]
  delta-svd        the same sum truncated to rank k by SVD: ΔW ≈ U_k S_k V_kᵀ,
                   B = U_k·√S_k, A = √S_k·V_kᵀ
  weights-average  the paper's WeightsAverage and PEFT's `linear` combination:
                   with weights normalised to Σ w_i = 1 and c_i = w_i·s_i,
                   A = Σ sign(c_i)·√|c_i|·A_i,  B = Σ √|c_i|·B_i.
                   B·A then holds cross terms √|c_i c_j|·B_i·A_j: NOT Σ w_i ΔW_i.
  ties, dare-linear, dare-ties, magnitude-prune
                   PEFT's task-arithmetic merges (peft.utils.merge_utils) applied
                   to the A and B matrices separately with the same √|c_i| weights,
                   as PEFT's add_weighted_adapter does (density, seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from loracompose.compose.bank import LoadedModule, LoraPair
from loracompose.errors import LoraComposeError


@dataclass(frozen=True)
class MergeOptions:
    density: float = 0.5  # share of entries kept by ties / dare / magnitude-prune
    majority_sign_method: str = "total"  # ties: "total" or "frequency"
    seed: int = 0  # dare's random drop mask
    svd_rank: int = 8  # delta-svd target rank


def _members(modules, weights, layer):
    return [(m.layers[layer], w) for m, w in zip(modules, weights) if layer in m.layers]


def delta_sum(modules: list[LoadedModule], weights: list[float], layers: list[str], options: MergeOptions):
    out = {}
    for layer in layers:
        members = _members(modules, weights, layer)
        A = torch.cat([w * pair.scale * pair.A.float() for pair, w in members])
        B = torch.cat([pair.B.float() for pair, _ in members], dim=1)
        out[layer] = LoraPair(A, B, 1.0)
    return out


def delta_svd(modules: list[LoadedModule], weights: list[float], layers: list[str], options: MergeOptions):
    out = {}
    for layer in layers:
        delta = sum(w * pair.delta() for pair, w in _members(modules, weights, layer))
        U, S, Vh = torch.linalg.svd(delta, full_matrices=False)
        k = min(options.svd_rank, S.shape[0])
        root = S[:k].sqrt()
        out[layer] = LoraPair(root[:, None] * Vh[:k], U[:, :k] * root[None, :], 1.0)
    return out


def _sqrt_weights(members) -> tuple[torch.Tensor, torch.Tensor]:
    """PEFT's split of c_i = w_i·s_i over the two sides: sign on A only, √|c_i| on both."""
    c = [w * pair.scale for pair, w in members]
    a = torch.tensor([math.copysign(math.sqrt(abs(x)), x) if x != 0 else 0.0 for x in c])
    b = torch.tensor([math.sqrt(abs(x)) for x in c])
    return a, b


def _task_arithmetic_family(merge_fn):
    def method(modules, weights, layers, options: MergeOptions):
        ranks = {m.name: {p.rank for p in m.layers.values()} for m in modules}
        if len({r for rs in ranks.values() for r in rs}) > 1:
            detail = ", ".join(f"{n}: rank {sorted(r)}" for n, r in ranks.items())
            raise LoraComposeError(f"this method merges A and B entry by entry, so all modules need the same "
                                   f"rank; got {detail} (delta-sum and delta-svd accept any ranks)")
        torch.manual_seed(options.seed)  # dare's drop masks, drawn layer by layer in model order
        out = {}
        for layer in layers:
            members = _members(modules, weights, layer)
            wa, wb = _sqrt_weights(members)
            A = merge_fn([pair.A.float() for pair, _ in members], wa, options)
            B = merge_fn([pair.B.float() for pair, _ in members], wb, options)
            out[layer] = LoraPair(A, B, 1.0)
        return out

    return method


def _peft(name: str, *option_names: str):
    """PEFT's merge function `name`, called with the options it takes (imported on first use:
    importing peft costs seconds, which every CLI command would pay)."""
    def merge(tensors, weights, options: MergeOptions):
        from peft.utils import merge_utils

        return getattr(merge_utils, name)(tensors, weights, *(getattr(options, o) for o in option_names))

    return merge


weights_average = _task_arithmetic_family(_peft("task_arithmetic"))
ties = _task_arithmetic_family(_peft("ties", "density", "majority_sign_method"))
dare_linear = _task_arithmetic_family(_peft("dare_linear", "density"))
dare_ties = _task_arithmetic_family(_peft("dare_ties", "density", "majority_sign_method"))
magnitude_prune = _task_arithmetic_family(_peft("magnitude_prune", "density"))
