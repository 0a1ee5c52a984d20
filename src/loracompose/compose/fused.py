"""Output-level composition as one fused pair of matmuls per layer, with per-sequence weights.

At every adapted layer, for sequence b with composition weights w_b = (w_b1 … w_bN):

    y_b = W0·x_b + Σ_i w_bi · s_i · B_i · (A_i · x_b)

Stacking the modules' A row-wise and B column-wise (R = Σ r_i rows in all),

    A_cat = [A_1; …; A_N]        (R, d_in)
    B_cat = [B_1 … B_N]          (d_out, R)
    c_b   = (w_b,owner(j) · s_owner(j))_j    (R,)   one coefficient per rank row

turns the sum into two matmuls whatever N is:

    y = W0·x + ((x @ A_catᵀ) ⊙ c) @ B_catᵀ      x: (B, T, d_in) → (B, T, R) → (B, T, d_out)

PEFT's multi-adapter forward runs a Python loop over the N adapters at every
layer; this does not, and c differs per sequence, so one batch can carry
sequences with different compositions.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from loracompose.compose.bank import ModuleBank
from loracompose.models import linear_layers
from loracompose.errors import LoraComposeError


class CompositionState:
    """The weights every fused layer reads: (batch, N) or None (base model only).

    Every assignment bumps `version`, so each layer recomputes its per-rank-row
    coefficients once per composition instead of at every forward (a decode step
    runs ~200 fused layers; a few small tensor ops each add up to milliseconds).
    """

    def __init__(self, n_modules: int):
        self.n_modules = n_modules
        self.version = 0
        self._weights: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor | None:
        return self._weights

    @weights.setter
    def weights(self, weights: torch.Tensor | None) -> None:
        self._weights = weights
        self.version += 1

    def set(self, weights: torch.Tensor | None) -> None:
        if weights is not None:
            if weights.ndim == 1:
                weights = weights[None, :]
            if weights.ndim != 2 or weights.shape[1] != self.n_modules:
                raise LoraComposeError(
                    f"composition weights must have one value per module ({self.n_modules}); got shape "
                    f"{tuple(weights.shape)}"
                )
        self.weights = weights


class ComposedLinear(nn.Module):
    """A base linear layer (dense or NF4) plus the stacked LoRA pairs of every module that adapts it."""

    def __init__(self, base_layer: nn.Module, A: torch.Tensor, B: torch.Tensor, owner: torch.Tensor,
                 scale: torch.Tensor, state: CompositionState):
        super().__init__()
        self.base_layer = base_layer
        self.register_buffer("A", A, persistent=False)  # (R, d_in)
        self.register_buffer("B", B, persistent=False)  # (d_out, R)
        self.register_buffer("owner", owner, persistent=False)  # (R,) module index of each rank row
        self.register_buffer("scale", scale, persistent=False)  # (R,) s_owner(j)
        self.state = state
        self._cache_version, self._cache = -1, None
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features

    @property
    def weight(self):  # so code that inspects layers (fingerprints, bank checks) sees the base weight
        return self.base_layer.weight

    def _coefficients(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(coeff (Bw, R), A_shared (R, d_in) or None), cached per composition (state.version).

        With one composition for the whole batch (Bw = 1) the coefficients are
        folded into A once — A_shared = diag(c)·A — so a step costs two matmuls
        and no elementwise op; with per-sequence weights they scale h instead.
        Rebuilt from the weights at every change, so autograd through the weights
        (learn-weights) sees one graph per forward.
        """
        if self._cache_version != self.state.version:
            weights = self.state.weights
            if weights is None:
                self._cache = None
            else:
                coeff = weights.to(self.A.dtype)[:, self.owner] * self.scale  # (Bw, R)
                self._cache = (coeff, coeff[0, :, None] * self.A if coeff.shape[0] == 1 else None)
            self._cache_version = self.state.version
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        cached = self._coefficients()
        if cached is None:
            return y
        coeff, A_shared = cached
        if coeff.shape[0] != 1 and coeff.shape[0] != x.shape[0]:
            raise LoraComposeError(f"composition weights are for {coeff.shape[0]} sequences, the batch has "
                                   f"{x.shape[0]}")
        x = x.to(self.A.dtype)
        if A_shared is not None:
            h = F.linear(x, A_shared)  # (B, T, R), already scaled by c
        else:
            h = F.linear(x, self.A) * coeff.view(coeff.shape[0], *([1] * (x.ndim - 2)), -1)  # (B, T, R)
        if y.dtype == h.dtype:  # y + h·Bᵀ in one op (addmm accumulates into a copy of y)
            return torch.addmm(y.reshape(-1, y.shape[-1]), h.reshape(-1, h.shape[-1]), self.B.T).view(y.shape)
        return y + F.linear(h, self.B).to(y.dtype)  # (B, T, d_out)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


class ComposedModel:
    """A base model whose adapted layers are replaced by fused layers over a module bank.

    `model` stays a plain transformers model (generate, forward, KV cache all work);
    `set_weights` picks the composition, per sequence.
    """

    def __init__(self, model: nn.Module, bank: ModuleBank, dtype: torch.dtype | None = None):
        self.model, self.bank = model, bank
        self.state = CompositionState(len(bank))
        device = next(model.parameters()).device
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        base_layers = linear_layers(model)
        layer_names = sorted({layer for module in bank.modules for layer in module.layers})
        self._originals: dict[str, nn.Module] = {}
        for layer in layer_names:
            As, Bs, owners, scales = [], [], [], []
            for index, module in enumerate(bank.modules):
                pair = module.layers.get(layer)
                if pair is None:
                    continue
                As.append(pair.A.float())
                Bs.append(pair.B.float())
                owners.append(torch.full((pair.rank,), index, dtype=torch.long))
                scales.append(torch.full((pair.rank,), pair.scale, dtype=torch.float32))
            original = base_layers[layer]
            fused = ComposedLinear(original, torch.cat(As).to(device, dtype), torch.cat(Bs, dim=1).to(device, dtype),
                                   torch.cat(owners).to(device), torch.cat(scales).to(device, dtype), self.state)
            parent, child = _parent(model, layer)
            setattr(parent, child, fused)
            self._originals[layer] = original

    def weights_for(self, compositions: list[dict[str, float]]) -> torch.Tensor:
        """(len(compositions), N) weight matrix from {module name: weight} dicts."""
        matrix = torch.zeros(len(compositions), len(self.bank))
        for row, composition in enumerate(compositions):
            for name, weight in composition.items():
                matrix[row, self.bank.index(name)] = float(weight)
        return matrix

    def set_weights(self, weights: torch.Tensor | None) -> None:
        self.state.set(weights)

    @contextmanager
    def composition(self, weights: torch.Tensor | None):
        previous = self.state.weights
        self.state.set(weights)
        try:
            yield self.model
        finally:
            self.state.weights = previous

    def detach(self) -> nn.Module:
        """Put the original layers back; returns the bare base model."""
        for layer, original in self._originals.items():
            parent, child = _parent(self.model, layer)
            setattr(parent, child, original)
        self._originals.clear()
        return self.model
