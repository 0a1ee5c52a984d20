"""The sampling loop: per-sequence seeds, per-sequence compositions, and logit-level mixing.

Written here rather than using `model.generate` because (1) each sequence has its
own random generator, so a sequence's text does not depend on what else is in the
batch, and (2) logit-sum needs every member's distribution at every step:

    scores_b(x) = Σ_k λ_bk · log p_k(x | prefix_b)          (product of experts)

where member k is the base (all module weights 0) or one module alone. All
members of all sequences run in one batched forward: sequence b with K_b members
takes K_b rows, Σ_b K_b rows in all, each row with its own composition weights in
the fused layers. Top-k, top-p and temperature are transformers' own logits warpers.

`Decoder` is the loop in step-wise form (prefill, then one token per `step()`), so
a server can stream tokens, cancel sequences and batch sequences that differ in
composition, member count, sampling settings and length; `sample` runs it to the end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from loracompose.errors import LoraComposeError


@dataclass(frozen=True)
class SamplingConfig:
    """The standard controlled-generation protocol (PPLM, DExperts): top-k 50, top-p 0.95, T=1."""

    max_new_tokens: int = 40
    top_k: int = 50
    top_p: float = 0.95
    temperature: float = 1.0
    batch_size: int = 16  # sequences per forward (times the members for logit-sum)

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.top_k < 0:
            raise LoraComposeError("max-new-tokens and batch-size must be at least 1, top-k at least 0 (0 = off)")
        if not 0 < self.top_p <= 1 or not self.temperature > 0:
            raise LoraComposeError(f"top-p must be in (0, 1] and temperature > 0; got top-p {self.top_p}, "
                                   f"temperature {self.temperature}")


def row_seed(seed: int, sample: int) -> int:
    """The generator seed of sample `sample` under run seed `seed` (64-bit, stable everywhere)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample}".encode()).digest()[:8], "big") >> 1


GREEDY_BELOW = 1e-3  # temperatures below this sample greedily: dividing logits by 1e-40 overflows float32


def _warpers(config: SamplingConfig) -> LogitsProcessorList:
    warpers = LogitsProcessorList()
    if config.temperature < GREEDY_BELOW:
        warpers.append(TopKLogitsWarper(1))  # only the most likely token survives
        return warpers
    if config.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(config.temperature))
    if config.top_k:
        warpers.append(TopKLogitsWarper(config.top_k))
    if config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))
    return warpers


def combine_members(logits: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Σ_k λ_bk · log_softmax(logits_bk): logits (B·K, V), coefficients (B, K) → scores (B, V)."""
    batch, members = coefficients.shape
    logp = torch.log_softmax(logits.float().view(batch, members, -1), dim=-1)
    return (coefficients[:, :, None].to(logp.dtype) * logp).sum(dim=1)


@dataclass
class Sequence:
    """One continuation to decode, and its progress.

    rows          (K, N) composition weights of its K member rows, or None for one bare-base row
    coefficients  (K,) logit-sum coefficients over those rows, or None: output level (K = 1,
                  the row's raw logits are the scores)
    """

    prompt_ids: list[int]
    seed: int  # seed of this sequence's own torch.Generator
    config: SamplingConfig
    rows: torch.Tensor | None = None
    coefficients: torch.Tensor | None = None
    tokens: list[int] = field(default_factory=list)  # sampled so far, EOS excluded
    finish_reason: str | None = None  # "stop" (EOS), "length" (max_new_tokens), "cancelled",
    #                                   "error" (its scores were NaN/Inf: no distribution to sample from)

    @property
    def members(self) -> int:
        return 1 if self.rows is None else self.rows.shape[0]


class Decoder:
    """A fixed batch of sequences decoded one token per `step()`, with one KV cache.

    Sequences are grouped by (member count, logit-sum or not, sampling settings):
    each group's scores and warpers run as one batched op. A batch where all
    sequences share one group runs exactly the ops of a plain batched loop.
    """

    def __init__(self, composed, tokenizer, sequences: list[Sequence], last_logits_only: bool = False):
        self.composed, self.model, self.sequences = composed, composed.model, sequences
        self.device = next(self.model.parameters()).device
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id
        # Prefill logits for the last position only: (rows, T, V) would be large for long prompts.
        self.last_logits_only = last_logits_only
        self.counts = torch.tensor([s.members for s in sequences])
        width = max(len(s.prompt_ids) for s in sequences)
        # Left padding (decoder-only: continuations start at the same column), member rows repeated.
        ids = torch.full((len(sequences), width), self.pad, dtype=torch.long)
        mask = torch.zeros(len(sequences), width, dtype=torch.long)
        for b, s in enumerate(sequences):
            ids[b, width - len(s.prompt_ids):] = torch.tensor(s.prompt_ids, dtype=torch.long)
            mask[b, width - len(s.prompt_ids):] = 1
        self.ids = ids.repeat_interleave(self.counts, 0).to(self.device)
        self.mask = mask.repeat_interleave(self.counts, 0).to(self.device)
        if all(s.rows is None for s in sequences):
            self.row_weights = None
        else:
            n = next(s.rows.shape[1] for s in sequences if s.rows is not None)
            self.row_weights = torch.cat([torch.zeros(1, n) if s.rows is None else s.rows.float()
                                          for s in sequences]).to(self.device)  # (Σ K_b, N)
        self.groups = self._group()
        self.generators = [torch.Generator(device="cpu").manual_seed(s.seed) for s in sequences]
        self.generated = torch.empty(len(sequences), 0, dtype=torch.long, device=self.device)
        self.finished = torch.tensor([s.finish_reason is not None for s in sequences], device=self.device)
        self.errors_seen = [False] * len(sequences)
        self.out = None
        self.positions = None

    def _group(self) -> list[tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, LogitsProcessorList]]:
        """(sequence indices, their rows, their (B_g, K) coefficients, warpers) per group; indices None = all."""
        keys: dict[tuple, list[int]] = {}
        for b, s in enumerate(self.sequences):
            c = s.config
            keys.setdefault((s.members, s.coefficients is None, c.top_k, c.top_p, c.temperature), []).append(b)
        starts = torch.cumsum(self.counts, 0) - self.counts
        groups = []
        for members_and_kind, indices in keys.items():
            first = self.sequences[indices[0]]
            coefficients = None if first.coefficients is None else torch.stack(
                [self.sequences[b].coefficients.float() for b in indices]).to(self.device)
            whole = len(keys) == 1
            rows = None if whole else torch.cat([torch.arange(starts[b], starts[b] + self.counts[b])
                                                 for b in indices]).to(self.device)
            groups.append((None if whole else torch.tensor(indices, device=self.device), rows, coefficients,
                           _warpers(first.config)))
        return groups

    @property
    def done(self) -> bool:
        return bool(self.finished.all())

    def cancel(self, index: int) -> None:
        """Stop sequence `index` (a client went away or its deadline passed); its row runs on as padding."""
        if self.sequences[index].finish_reason is None:
            self.sequences[index].finish_reason = "cancelled"
            self.finished[index] = True

    # -- continuous batching: sequences join a running batch and leave it between steps ------------
    # The batch stays one left-padded KV cache, exactly the layout of a batch prefilled together:
    # row r holds its keys at the right end of the cache, padding (masked out) at the left, and its
    # own position ids. A group that joins is prefilled on its own (its own Decoder, one step), then
    # `absorb` pads whichever cache is shorter on the left and concatenates them along the batch;
    # `compact` drops finished rows and the leading columns that only padding still fills.
    def can_absorb(self, other: "Decoder") -> bool:
        """Whether `other`'s cache can be merged into this one (both prefilled; cache layers that can be padded)."""
        if self.out is None or other.out is None:
            return False
        width = max(self.mask.shape[1], other.mask.shape[1]) + 1  # the columns after the next step
        return _paddable(self.out.cache, width) and _paddable(other.out.cache, width)

    def absorb(self, other: "Decoder") -> None:
        """Append `other`'s sequences (prefilled, same model and bank) to this batch, rows and cache included."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.out.cache.layers, other.out.cache.layers):
            for name in ("keys", "values"):  # (rows, heads, T, head_dim), padded on the left to `width`
                setattr(mine, name, torch.cat([_pad_left(getattr(mine, name), width, 2),
                                               _pad_left(getattr(theirs, name), width, 2)]))
            _set_length(mine, width)
        self.mask = torch.cat([_pad_left(self.mask, width, 1), _pad_left(other.mask, width, 1)])
        self.positions = torch.cat([self.positions[:, -1:], other.positions[:, -1:]])
        steps = max(self.generated.shape[1], other.generated.shape[1])  # warpers read only its shape
        self.generated = torch.cat([_pad_left(self.generated, steps, 1, self.pad),
                                    _pad_left(other.generated, steps, 1, self.pad)])
        if self.row_weights is None and other.row_weights is None:
            weights = None
        else:
            n = (self.row_weights if self.row_weights is not None else other.row_weights).shape[1]
            weights = torch.cat([torch.zeros(int(d.counts.sum()), n, device=self.device) if d.row_weights is None
                                 else d.row_weights for d in (self, other)])
        self.row_weights = weights
        self.sequences = self.sequences + other.sequences
        self.generators = self.generators + other.generators
        self.errors_seen = self.errors_seen + other.errors_seen
        self.finished = torch.cat([self.finished, other.finished])
        self.counts = torch.cat([self.counts, other.counts])
        self.groups = self._group()

    def compact(self) -> list[Sequence]:
        """Drop the finished sequences' rows from the batch (cache, mask, weights); returns them."""
        keep = [b for b in range(len(self.sequences)) if not self.finished[b]]
        if len(keep) == len(self.sequences):
            return []
        dropped = [s for b, s in enumerate(self.sequences) if self.finished[b]]
        starts = torch.cumsum(self.counts, 0) - self.counts
        rows = torch.cat([torch.arange(int(starts[b]), int(starts[b] + self.counts[b])) for b in keep]) if keep \
            else torch.zeros(0, dtype=torch.long)
        rows = rows.to(self.device)
        self.mask = self.mask.index_select(0, rows)
        # Columns that are padding in every remaining row need not be kept (nor attended to).
        filled = self.mask.any(dim=0).nonzero()
        first = int(filled[0]) if len(filled) else self.mask.shape[1]
        trim = _paddable(self.out.cache, self.mask.shape[1]) and first > 0
        for layer in self.out.cache.layers:
            for name in ("keys", "values"):
                tensor = getattr(layer, name).index_select(0, rows)
                setattr(layer, name, tensor[:, :, first:] if trim else tensor)
            if trim:
                _set_length(layer, self.mask.shape[1] - first)
        if trim:
            self.mask = self.mask[:, first:]
        self.positions = self.positions.index_select(0, rows)
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.generated = self.generated.index_select(0, index)
        self.finished = self.finished.index_select(0, index)
        if self.row_weights is not None:
            self.row_weights = self.row_weights.index_select(0, rows)
        self.sequences = [self.sequences[b] for b in keep]
        self.generators = [self.generators[b] for b in keep]
        self.errors_seen = [self.errors_seen[b] for b in keep]
        self.counts = self.counts[keep] if keep else self.counts[:0]
        self.groups = self._group() if keep else []
        return dropped

    def remap_columns(self, old: list[str], new: list[str]) -> None:
        """The bank changed from modules `old` to `new` (by name): move each row's weights to the new columns.

        Every module a running row weights must still be in `new` (the server removes a module from
        the fused layers only once no running sequence uses it).
        """
        if self.row_weights is not None:
            self.row_weights = move_columns(self.row_weights, old, new)

    def _forward(self, **inputs):
        # Set only when another composition is active: the fused layers keep their coefficients
        # for as long as the weights stay the same object (see compose/fused.py).
        if self.composed.state.weights is not self.row_weights:
            self.composed.set_weights(self.row_weights)
        return self.model(attention_mask=self.mask, position_ids=self.positions, use_cache=True, **inputs)

    def run(self) -> None:
        """Decode to the end, then put back the composition that was active before."""
        with self.composed.composition(self.row_weights):
            while not self.done:
                self.step()

    @torch.no_grad()
    def step(self) -> list[int]:
        """Sample one token for every unfinished sequence; returns the indices that got a token or finished."""
        if self.done:
            return []
        if self.out is None:
            self.positions = (self.mask.cumsum(-1) - 1).clamp(min=0)
            extra = {"logits_to_keep": 1} if self.last_logits_only else {}
            self.out = self._forward(input_ids=self.ids, **extra)
        else:
            step = self.generated[:, -1].repeat_interleave(self.counts.to(self.device))[:, None]
            self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
            self.positions = self.positions[:, -1:] + 1
            self.out = self._forward(input_ids=step, cache=self.out.cache)
        logits = self.out.logits[:, -1, :]
        token = torch.empty(len(self.sequences), dtype=torch.long)
        for indices, rows, coefficients, warpers in self.groups:
            group_logits = logits if rows is None else logits.index_select(0, rows)
            scores = combine_members(group_logits, coefficients) if coefficients is not None else group_logits.float()
            generated = self.generated if indices is None else self.generated.index_select(0, indices)
            probs = torch.softmax(warpers(generated, scores), dim=-1).cpu()
            members = range(len(self.sequences)) if indices is None else indices.tolist()
            # A row whose scores overflowed (a module's weights, a tiny temperature) has no distribution:
            # that sequence alone ends with an error; the others draw as usual.
            valid = torch.isfinite(probs).all(dim=-1) & (probs.sum(dim=-1) > 0)
            # One draw per sequence from its own generator: independent of the batch.
            for g, b in enumerate(members):
                if self.finished[b]:
                    token[b] = self.pad  # finished rows run on as padding; nothing to draw
                elif not valid[g]:
                    self.sequences[b].finish_reason = "error"
                    self.finished[b] = True
                    token[b] = self.pad
                else:
                    token[b] = torch.multinomial(probs[g], 1, generator=self.generators[b])[0]
        token = token.to(self.device)
        was_finished = self.finished.clone()
        token = torch.where(self.finished, torch.full_like(token, self.pad), token)
        self.generated = torch.cat([self.generated, token[:, None]], dim=1)
        self.finished |= token == self.eos
        changed = []
        for b, s in enumerate(self.sequences):
            if s.finish_reason == "error" and not self.errors_seen[b]:
                self.errors_seen[b] = True  # ended this step by non-finite scores: report it once
                changed.append(b)
                continue
            if was_finished[b]:
                continue
            if token[b] == self.eos:
                s.finish_reason = "stop"
            else:
                s.tokens.append(int(token[b]))
                if len(s.tokens) >= s.config.max_new_tokens:
                    s.finish_reason = "length"
                    self.finished[b] = True
            changed.append(b)
        return changed


@torch.no_grad()
def sample(composed, tokenizer, prompts: list[str], seeds: list[int], config: SamplingConfig,
           weights: torch.Tensor | None = None, coefficients: torch.Tensor | None = None,
           members: torch.Tensor | None = None) -> list[str]:
    """Continue each prompt once with its own seed; returns the continuations (no prompt).

    composed      a `ComposedModel` (over an empty bank for the bare base)
    weights       (B, N) output-level composition per sequence, or None for the base
    coefficients  (B, K) logit-sum coefficients per sequence over `members` (K, N),
                  the member rows' composition weights; None for no logit mixing
    """
    tokenizer.padding_side = "left"
    # Special tokens as the model was trained with (Gemma's BOS; SmolLM2 adds none).
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    prompts_ids = [row[m.bool()] for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    sequences = []
    for b, (ids, seed) in enumerate(zip(prompts_ids, seeds)):
        if coefficients is not None:
            rows, coeff = members, coefficients[b]  # member k of sequence b at row b·K + k
        else:
            rows, coeff = (None if weights is None else weights[b : b + 1]), None
        sequences.append(Sequence(ids.tolist(), seed, config, rows, coeff))
    decoder = Decoder(composed, tokenizer, sequences)
    decoder.run()
    failed = [b for b, s in enumerate(sequences) if s.finish_reason == "error"]
    if failed:
        raise LoraComposeError(f"generation produced NaN or Inf scores for {len(failed)} of {len(sequences)} "
                               f"sequences (first: prompt {failed[0]}); a module's weights or the composition's "
                               "weights overflow float32; use smaller weights or retrain the module")
    return [_continuation(tokenizer, p, g) for p, g in zip(prompts_ids, decoder.generated.cpu())]


def _continuation(tokenizer, prompt_ids: torch.Tensor, generated: torch.Tensor) -> str:
    """The continuation's text as it reads after the prompt.

    Decoding the new tokens alone drops the space that starts them ("The movie" +
    "was"), because tokenizers strip a leading space at the start of a decode;
    so decode prompt + continuation and remove the decoded prompt.
    """
    prefix = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    full = tokenizer.decode(torch.cat([prompt_ids, generated]), skip_special_tokens=True)
    if full.startswith(prefix):
        return full[len(prefix):]
    return tokenizer.decode(generated, skip_special_tokens=True)


def continuation_text(tokenizer, sequence: Sequence) -> str:
    """A `Sequence`'s text so far, as `sample` would return it."""
    return _continuation(tokenizer, torch.tensor(sequence.prompt_ids, dtype=torch.long),
                         torch.tensor(sequence.tokens, dtype=torch.long))


def move_columns(rows: torch.Tensor, old: list[str] | tuple[str, ...],
                 new: list[str] | tuple[str, ...]) -> torch.Tensor:
    """Composition weights (K, len(old)) over modules `old` as (K, len(new)) over `new`, by module name
    (a module missing from `new` is dropped)."""
    moved = torch.zeros(rows.shape[0], len(new), dtype=rows.dtype, device=rows.device)
    for j, name in enumerate(old):
        if name in new:
            moved[:, list(new).index(name)] = rows[:, j]
    return moved


def _pad_left(tensor: torch.Tensor, width: int, dim: int, value=0) -> torch.Tensor:
    """`tensor` with `value` columns prepended along `dim` up to `width`."""
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([torch.full(shape, value, dtype=tensor.dtype, device=tensor.device), tensor], dim=dim)


def _paddable(cache, width: int) -> bool:
    """Whether every layer of a transformers cache holds all `width` columns as plain tensors.

    True for `DynamicLayer` (llama, SmolLM2) and for a sliding-window layer that has not yet
    dropped columns (its cumulative length is its width and stays below its window); other layers
    (a full sliding window, static or quantised caches) cannot be padded or trimmed here.
    """
    for layer in cache.layers:
        if type(layer) is DynamicSlidingWindowLayer:
            if layer.cumulative_length != layer.keys.shape[-2] or width >= layer.sliding_window - 1:
                return False
        elif type(layer) is not DynamicLayer or not layer.is_initialized:
            return False
    return True


def _set_length(layer, width: int) -> None:
    """A sliding-window layer counts the columns it has seen; after padding or trimming that is its width."""
    if hasattr(layer, "cumulative_length"):
        layer.cumulative_length = width
