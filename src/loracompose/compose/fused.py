"""Output-level composition as fused matmuls per layer, with per-sequence weights.

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

Two refinements keep the cost at what the batch uses:

- Active rows only. A module whose weight is 0 in every row of the batch adds
  exact zeros, so only the rank rows of the *active* modules (some row's weight
  ≠ 0) are computed: A_act = A_cat[rows], B_act = B_cat[:, rows]. The gather runs
  once per change of the batch's module set (`CompositionState.active_version`),
  the coefficients once per change of the weights (`version`); a 64-module bank
  with 3 modules in use costs what a 3-module bank costs.
- One A matmul per shared input. Layers that read the same x (a llama block's
  q/k/v projections, and gate/up) share one `_InputGroup`: their A's are stacked
  once, x @ [A_q; A_k; A_v]ᵀ runs once, and each layer takes its own columns of
  the result. Which layers share is a guess by name (`SHARED_INPUT`); whether
  they really got the same x is checked per call (the same tensor object, not
  modified since), so a wrong guess only costs a recomputation. At batch 1 on
  CPU it measured no faster than one A matmul per layer (66.7 vs 67.1 ms a step,
  `benchmarks/floor.py`); it is exact and kept.

Why not `torch.compile`: compiling the fused 8-module SmolLM2 (Inductor, CPU,
batch 1) measured 72.4 ms a decode step against 63.5 eager, 1.14× slower, after
33 s of compiling (`python -m benchmarks.profiles compile`, 2026-12-05, shared
2-core machine): Dynamo hits its recompile limit as the KV cache grows and breaks
the graph at a `Tensor.item()` in transformers, so it runs eager plus guards.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from loracompose.compose.bank import ModuleBank
from loracompose.errors import LoraComposeError
from loracompose.models import linear_layers

# Sibling layers that read the same input in llama-style blocks (llama, SmolLM2, Mistral, Qwen, Gemma).
SHARED_INPUT = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class CompositionState:
    """The weights every fused layer reads: (batch, N) or None (base model only).

    Every assignment bumps `version`, so each layer recomputes its per-rank-row
    coefficients once per composition instead of at every forward (a decode step
    runs ~200 fused layers; a few small tensor ops each add up to milliseconds).
    `active_version` changes only when the set of modules in use changes: the
    layers then gather the rank rows of that set once.
    """

    def __init__(self, n_modules: int):
        self.n_modules = n_modules
        self.version = 0
        self.active_version = 0
        self._weights: torch.Tensor | None = None
        self._active: tuple[int, ...] | None = None
        self._active_of = -1  # the version `_active` was computed for

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

    def active(self) -> tuple[int, ...] | None:
        """Indices of the modules some row uses (weight ≠ 0), or None for the bare base.

        With weights that require grad (learn-weights) every module counts: a weight
        at 0 still has a gradient.
        """
        if self._active_of != self.version:
            weights = self._weights
            if weights is None:
                active = None
            elif weights.requires_grad:
                active = tuple(range(self.n_modules))
            else:
                active = tuple((weights != 0).any(dim=0).nonzero().flatten().tolist()) or None
            if active != self._active:
                self._active = active
                self.active_version += 1
            self._active_of = self.version
        return self._active


class _InputGroup:
    """The stacked A of the layers that read one input, and the active rows of each.

    A_T     (d_in, R_g)   the members' A_cat, transposed (members in order)
    owner   (R_g,)        module index of each rank row
    member  j's rows are [starts[j], starts[j+1]) of R_g; its B_T is (R_j, d_out)

    Per active set: the active rows' A_T columns and each member's B_T rows and its
    [lo, hi) in the gathered columns. Per weights: the coefficients c (Bw, R_act),
    folded into A_T when one composition serves the whole batch (Bw = 1), so a step
    is one matmul here plus one addmm per member and no elementwise op.
    """

    def __init__(self, state: CompositionState, A_T: torch.Tensor, owner: torch.Tensor, scale: torch.Tensor,
                 B_Ts: list[torch.Tensor]):
        self.state, self.A_T, self.owner, self.scale, self.B_Ts = state, A_T, owner, scale, B_Ts
        sizes = [b.shape[0] for b in B_Ts]
        self.starts = [sum(sizes[:j]) for j in range(len(sizes) + 1)]
        self.members = len(B_Ts)
        self._rows_version, self._rows = -1, None
        self._coeff_version, self._coeff = -1, None
        self._x = self._x_version = self._h = None
        self._uses = 0

    def _gather(self, active: tuple[int, ...]):
        """(A_T_act, owner_act, scale_act, [(lo, hi, B_T_act)] per member) or None if no row is active."""
        used = torch.isin(self.owner, torch.tensor(active, device=self.owner.device))
        if bool(used.all()):  # the whole group: no copy
            return self.A_T, self.owner, self.scale, [(self.starts[j], self.starts[j + 1], B_T)
                                                      for j, B_T in enumerate(self.B_Ts)]
        rows = used.nonzero().flatten()
        if rows.numel() == 0:
            return None
        spans, lo = [], 0
        for j, B_T in enumerate(self.B_Ts):
            local = used[self.starts[j]:self.starts[j + 1]].nonzero().flatten()
            spans.append((lo, lo + local.numel(), B_T.index_select(0, local) if local.numel() else None))
            lo += local.numel()
        return self.A_T.index_select(1, rows), self.owner[rows], self.scale[rows], spans

    def plan(self):
        """((A_T, coeff or None) for the step, member spans), or None when no module of this group is active."""
        state = self.state
        if self._coeff_version != state.version:
            active = state.active()
            if self._rows_version != state.active_version:
                self._rows = None if active is None else self._gather(active)
                self._rows_version = state.active_version
            if self._rows is None:
                self._coeff = None
            else:
                A_T, owner, scale, spans = self._rows
                coeff = state.weights.to(device=A_T.device, dtype=A_T.dtype)[:, owner] * scale  # (Bw, R_act)
                if coeff.shape[0] == 1:
                    self._coeff = ((A_T * coeff), None, spans)  # diag(c) folded in: (d_in, R_act)
                else:
                    self._coeff = (A_T, coeff, spans)
            self._coeff_version = state.version
            self._x = self._h = None
        return self._coeff

    def project(self, x: torch.Tensor, A_T: torch.Tensor, coeff: torch.Tensor | None) -> torch.Tensor:
        """h = (x @ A_actᵀ) ⊙ c as (B·T, R_act), computed once per input shared by the members."""
        shared = self.members > 1
        if shared and x is self._x and x._version == self._x_version:
            h = self._h
            self._uses += 1
            if self._uses == self.members:  # every member has its columns: let go of x
                self._x = self._h = None
            return h
        if coeff is not None and coeff.shape[0] != x.shape[0]:
            raise LoraComposeError(f"composition weights are for {coeff.shape[0]} sequences, the batch has "
                                   f"{x.shape[0]}")
        flat = x.reshape(-1, x.shape[-1])
        h = torch.mm(flat if flat.dtype == A_T.dtype else flat.to(A_T.dtype), A_T)  # (B·T, R_act)
        if coeff is not None:
            h = (h.view(x.shape[0], -1, h.shape[-1]) * coeff[:, None, :]).view(h.shape)
        if shared:
            self._x, self._x_version, self._h, self._uses = x, x._version, h, 1
        return h


class ComposedLinear(nn.Module):
    """A base linear layer (dense or NF4) plus its LoRA pairs, member `index` of an `_InputGroup`."""

    def __init__(self, base_layer: nn.Module, group: _InputGroup, index: int):
        super().__init__()
        self.base_layer = base_layer
        self.group, self.index = group, index
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features

    @property
    def weight(self):  # so code that inspects layers (fingerprints, bank checks) sees the base weight
        return self.base_layer.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base_layer(x)
        plan = self.group.plan()
        if plan is None:
            return y
        A_T, coeff, spans = plan
        lo, hi, B_T = spans[self.index]
        if B_T is None:  # none of this layer's modules is active
            return y
        h = self.group.project(x, A_T, coeff)
        if hi - lo != h.shape[1]:
            h = h[:, lo:hi]  # (B·T, r_act): this layer's columns of the group's
        if y.dtype == h.dtype and not (y.requires_grad or h.requires_grad) and y.is_contiguous():
            y.view(-1, y.shape[-1]).addmm_(h, B_T)  # y += h·B_actᵀ in place: no copy of y (inference only)
            return y
        return y + (h @ B_T).view(y.shape).to(y.dtype)  # (B, T, d_out)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def _input_groups(layer_names: list[str]) -> list[list[str]]:
    """The layers grouped by shared input (`SHARED_INPUT` siblings under one parent), in model order."""
    groups: dict[tuple, list[str]] = {}
    for layer in layer_names:
        parent, _, child = layer.rpartition(".")
        family = next((i for i, names in enumerate(SHARED_INPUT) if child in names), None)
        groups.setdefault((parent, family) if family is not None else (layer,), []).append(layer)
    return list(groups.values())


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
        layer_names = [name for name in base_layers if any(name in m.layers for m in bank.modules)]
        self._originals: dict[str, nn.Module] = {}
        for members in _input_groups(layer_names):
            As, owners, scales, B_Ts = [], [], [], []
            for layer in members:
                layer_Bs = []
                for index, module in enumerate(bank.modules):
                    pair = module.layers.get(layer)
                    if pair is None:
                        continue
                    As.append(pair.A.float())
                    layer_Bs.append(pair.B.float())
                    owners.append(torch.full((pair.rank,), index, dtype=torch.long))
                    scales.append(torch.full((pair.rank,), pair.scale, dtype=torch.float32))
                B_Ts.append(torch.cat(layer_Bs, dim=1).T.contiguous().to(device, dtype))  # (R_layer, d_out)
            group = _InputGroup(self.state, torch.cat(As).T.contiguous().to(device, dtype),
                                torch.cat(owners).to(device), torch.cat(scales).to(device, dtype), B_Ts)
            for index, layer in enumerate(members):
                original = base_layers[layer]
                parent, child = _parent(model, layer)
                setattr(parent, child, ComposedLinear(original, group, index))
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
