"""Model arithmetic: the instruction's effect on the next-token distribution, amplified.

For a prompt p, its instructed rendering p̃ (`prompting.instructed`) and strength S:

    score(x) = log p(x | p, y<t) + S · (log p(x | p̃, y<t) − log p(x | p, y<t))      (V,)

both branches reading the same continuation y<t. S = 1 is plain prompting; S > 1 pushes
further in the direction the instruction moves the model (Dekoninck et al.'s model
arithmetic; the classifier-free-guidance form). End of turn is handled: an instruct model
under the instruction puts mass on ending its turn that the plain branch does not, and the
difference amplified makes it end at once (empty replies). So the end tokens (EOS and the
chat template's end of turn) keep the instructed branch's own log-probability, unamplified.

Sampling is the project's: top-k / top-p / temperature are transformers' warpers applied to
the score, one `torch.Generator` per sequence seeded with `row_seed(seed, sample)`, so a
text is independent of its batch and S = 1 draws what prompting draws.
"""

from __future__ import annotations

import torch

from loracompose.decoding import SamplingConfig, _continuation, _warpers
from loracompose.errors import LoraComposeError

STRENGTH_RANGE = (1.0, 4.0)  # inclusive: S = 1 is prompting
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<eos>", "</s>")


def check_strength(strength: float) -> float:
    low, high = STRENGTH_RANGE
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not low <= strength <= high:
        raise LoraComposeError(f"model arithmetic strength {strength!r} is out of range; accepted: {low} to {high} "
                               "(1 is plain prompting)")
    return float(strength)


def end_token_ids(tokenizer) -> list[int]:
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in END_TOKENS if t in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)


def combine(plain_logits: torch.Tensor, instructed_logits: torch.Tensor, strength: float,
            end_ids: list[int]) -> torch.Tensor:
    """(B, V) scores from the two branches' logits (B, V) each (see the module docstring)."""
    plain = torch.log_softmax(plain_logits.float(), dim=-1)
    instructed = torch.log_softmax(instructed_logits.float(), dim=-1)
    scores = plain + strength * (instructed - plain)
    if end_ids:
        scores[:, end_ids] = instructed[:, end_ids]
    return scores


@torch.no_grad()
def sample_arithmetic(model, tokenizer, prompts: list[str], instructed: list[str], seeds: list[int],
                      config: SamplingConfig, strength: float) -> list[str]:
    """Continue each prompt once under model arithmetic; returns the continuations (no prompt).

    Rows 0..B−1 of one batch read the instructed prompts and rows B..2B−1 the plain ones, left
    padded; every step feeds sequence b's sampled token to both of its rows.
    """
    check_strength(strength)
    n = len(prompts)
    if n != len(instructed) or n != len(seeds) or n == 0:
        raise LoraComposeError("model arithmetic needs one instructed prompt and one seed per prompt")
    tokenizer.padding_side = "left"
    batch = tokenizer(instructed + prompts, return_tensors="pt", padding=True)
    plain_ids = [row[m.bool()] for row, m in zip(batch["input_ids"][n:], batch["attention_mask"][n:])]
    mask = batch["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True)
    warpers, end_ids = _warpers(config), end_token_ids(tokenizer)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    generated = torch.empty(n, 0, dtype=torch.long)
    finished = torch.zeros(n, dtype=torch.bool)
    for _ in range(config.max_new_tokens):
        logits = out.logits[:, -1, :]
        scores = combine(logits[n:], logits[:n], strength, end_ids)
        probs = torch.softmax(warpers(generated, scores), dim=-1)
        token = torch.full((n,), pad, dtype=torch.long)
        for b in range(n):
            if not finished[b]:
                token[b] = torch.multinomial(probs[b], 1, generator=generators[b])[0]
        generated = torch.cat([generated, token[:, None]], dim=1)
        finished |= token == eos
        if finished.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = positions[:, -1:] + 1
        out = model(input_ids=token.repeat(2)[:, None], attention_mask=mask, position_ids=positions,
                    cache=out.cache, use_cache=True)
    return [_continuation(tokenizer, p, g) for p, g in zip(plain_ids, generated)]
