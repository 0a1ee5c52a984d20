"""Fluency: perplexity of each continuation given its prompt under a reference causal LM.

For text i with prompt tokens p and continuation tokens c_1..c_T (re-tokenised
by the reference model's own tokenizer; the prompt gets its special tokens,
e.g. BOS, the continuation none):

    NLL_i = −Σ_t log P_ref(c_t | p, c_<t)          (nats)

and the perplexity of a set of texts is token-weighted, never a mean of
per-text perplexities:

    PPL = exp( Σ_i NLL_i / Σ_i T_i )

An empty prompt becomes the BOS token when the tokenizer has one; without one
the first continuation token has no context and is not scored (T_i counts
scored tokens only).
Sequences are batched with right padding sorted by length; a sequence longer
than `max_tokens` loses prompt tokens from the left, then continuation tokens
from the end.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm


def _encode(tokenizer, prompt: str, text: str, max_tokens: int) -> tuple[list[int], int]:
    """Token ids of prompt + continuation, and the index of the first continuation token."""
    prompt_ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    if not prompt_ids and getattr(tokenizer, "bos_token_id", None) is not None:
        prompt_ids = [tokenizer.bos_token_id]
    text_ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if len(prompt_ids) + len(text_ids) > max_tokens:
        keep = max(1, max_tokens - len(text_ids)) if prompt_ids else 0
        prompt_ids = prompt_ids[-keep:] if keep else []
        text_ids = text_ids[: max_tokens - len(prompt_ids)]
    return prompt_ids + text_ids, len(prompt_ids)


def continuation_nll(model, tokenizer, prompts: list[str], texts: list[str], *, batch_size: int = 8,
                     max_tokens: int = 1024, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per text: (summed NLL of its continuation tokens in nats, number of scored tokens)."""
    encoded = [_encode(tokenizer, p, t, max_tokens) for p, t in zip(prompts, texts, strict=True)]
    nll, tokens = np.zeros(len(encoded)), np.zeros(len(encoded), dtype=np.int64)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    device = getattr(model, "device", torch.device("cpu"))
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = 0 if pad is None else pad
    bar = tqdm(total=len(order), desc="perplexity", unit="text", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(order), batch_size):
        chunk = [i for i in order[start : start + batch_size] if len(encoded[i][0]) > max(1, encoded[i][1])]
        bar.update(min(batch_size, len(order) - start))
        if not chunk:
            continue
        width = max(len(encoded[i][0]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        scored = torch.zeros((len(chunk), width - 1), dtype=torch.bool)  # target position t+1 scored at t
        for row, i in enumerate(chunk):
            seq, first = encoded[i]
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
            scored[row, max(first, 1) - 1 : len(seq) - 1] = True
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=attention.to(device)).logits  # (B, T, V)
        picked = logits[:, :-1][scored.to(logits.device)].float()  # (K, V): only the scored positions
        targets = ids[:, 1:][scored].to(picked.device)  # (K,)
        token_nll = -picked.log_softmax(dim=-1).gather(1, targets[:, None])[:, 0]
        per_row = torch.zeros(len(chunk), dtype=torch.float64).index_add_(
            0, scored.nonzero()[:, 0], token_nll.double().cpu())
        for row, i in enumerate(chunk):
            nll[i], tokens[i] = float(per_row[row]), int(scored[row].sum())
    bar.close()
    return nll, tokens


def perplexity(nll, tokens) -> float | None:
    """exp(Σ NLL / Σ tokens): token-weighted; None when no token was scored."""
    total = int(np.sum(tokens))
    return math.exp(float(np.sum(nll)) / total) if total else None
