"""The sampling loop: per-sequence seeds, per-sequence compositions, and logit-level mixing.

Written here rather than using `model.generate` because (1) each sequence has its
own random generator, so a sequence's text does not depend on what else is in the
batch, and (2) logit-sum needs every member's distribution at every step:

    scores_b(x) = Σ_k λ_bk · log p_k(x | prefix_b)          (product of experts)

where member k is the base (all module weights 0) or one module alone. All
members of all sequences run in one batched forward: B sequences × K members =
B·K rows, each row with its own composition weights in the fused layers.
Top-k, top-p and temperature are transformers' own logits warpers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)


@dataclass(frozen=True)
class SamplingConfig:
    """The standard controlled-generation protocol (PPLM, DExperts): top-k 50, top-p 0.95, T=1."""

    max_new_tokens: int = 40
    top_k: int = 50
    top_p: float = 0.95
    temperature: float = 1.0
    batch_size: int = 16  # sequences per forward (times the members for logit-sum)

    def __post_init__(self):
        from loracompose.errors import LoraComposeError

        if self.max_new_tokens < 1 or self.batch_size < 1 or self.top_k < 0:
            raise LoraComposeError("max-new-tokens and batch-size must be at least 1, top-k at least 0 (0 = off)")
        if not 0 < self.top_p <= 1 or not self.temperature > 0:
            raise LoraComposeError(f"top-p must be in (0, 1] and temperature > 0; got top-p {self.top_p}, "
                                   f"temperature {self.temperature}")


def row_seed(seed: int, sample: int) -> int:
    """The generator seed of sample `sample` under run seed `seed` (64-bit, stable everywhere)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{sample}".encode()).digest()[:8], "big") >> 1


def _warpers(config: SamplingConfig) -> LogitsProcessorList:
    warpers = LogitsProcessorList()
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
    model = composed.model
    device = next(model.parameters()).device
    n_members = 1 if coefficients is None else coefficients.shape[1]
    tokenizer.padding_side = "left"  # decoder-only: continuations start at the same column
    # Special tokens as the model was trained with (Gemma's BOS; SmolLM2 adds none).
    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    if coefficients is not None:
        row_weights = members.repeat(len(prompts), 1)  # (B·K, N): member k of sequence b at row b·K + k
        ids, mask = ids.repeat_interleave(n_members, 0), mask.repeat_interleave(n_members, 0)
    else:
        row_weights = weights
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    warpers = _warpers(config)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    generated = torch.empty(len(prompts), 0, dtype=torch.long, device=device)
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    with composed.composition(row_weights.to(device) if row_weights is not None else None):
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        for _ in range(config.max_new_tokens):
            logits = out.logits[:, -1, :]
            scores = combine_members(logits, coefficients.to(device)) if coefficients is not None else logits.float()
            scores = warpers(generated, scores)
            probs = torch.softmax(scores, dim=-1).cpu()
            # One draw per sequence from its own generator: independent of the batch.
            token = torch.stack([torch.multinomial(probs[b], 1, generator=generators[b])[0]
                                 for b in range(len(prompts))]).to(device)
            token = torch.where(finished, torch.full_like(token, pad), token)
            generated = torch.cat([generated, token[:, None]], dim=1)
            finished |= token == eos
            if finished.all():
                break
            step = token.repeat_interleave(n_members)[:, None]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
            out = model(input_ids=step, attention_mask=mask, position_ids=positions, cache=out.cache,
                        use_cache=True)
    prompts_ids = [row[m.bool()] for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    return [_continuation(tokenizer, p, g) for p, g in zip(prompts_ids, generated)]


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
