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

from loracompose.progress import progress_bar


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


class _ScoredPositionsOnly:
    """While active, the model's output layer sees only the hidden states of the scored positions.

    A forward pre-hook on `get_output_embeddings()` (the LM head) replaces its input (B, T, H)
    by the rows of the scored positions (K, H), so the model's logits come out as (K, V), with
    whatever the model does after its head (e.g. logit soft-capping) applied as usual — no
    logits for prompt and padding positions, and no (B, T, V) tensor. With a 262k-word
    vocabulary (Gemma 3) that tensor is most of the memory traffic of scoring. Models without
    `get_output_embeddings` get full logits, then the same selection.
    """

    def __init__(self, model):
        get = getattr(model, "get_output_embeddings", None)
        self.head = get() if callable(get) else None
        self.positions = None  # (B, T) bool: the positions whose next token is scored
        self.handle = None

    def __enter__(self):
        if self.head is not None:
            self.handle = self.head.register_forward_pre_hook(lambda _, args: (args[0][self.positions],))
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.remove()

    def logits(self, model, ids, attention, positions) -> torch.Tensor:
        """(K, V) logits at the K scored positions, in row-major order."""
        self.positions = positions.to(ids.device)
        logits = model(input_ids=ids, attention_mask=attention).logits
        return logits if self.handle is not None else logits[self.positions]


def _token_nll(logits: torch.Tensor, targets: torch.Tensor, rows: int = 128) -> torch.Tensor:
    """−log softmax(logits)[target] per row, as logsumexp − logit, `rows` rows at a time (bounded memory)."""
    out = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    for start in range(0, logits.shape[0], rows):
        chunk = logits[start : start + rows].float()  # (r, V)
        picked = chunk.gather(1, targets[start : start + rows, None])[:, 0]
        out[start : start + rows] = torch.logsumexp(chunk, dim=-1) - picked
    return out


def continuation_nll(model, tokenizer, prompts: list[str], texts: list[str], *, batch_size: int = 8,
                     max_tokens: int = 1024, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per text: (summed NLL of its continuation tokens in nats, number of scored tokens)."""
    encoded = [_encode(tokenizer, p, t, max_tokens) for p, t in zip(prompts, texts, strict=True)]
    nll, tokens = np.zeros(len(encoded)), np.zeros(len(encoded), dtype=np.int64)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    device = getattr(model, "device", torch.device("cpu"))
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = 0 if pad is None else pad
    bar = progress_bar(total=len(order), desc="perplexity", unit="text", disable=not progress)
    with _ScoredPositionsOnly(model) as head, torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = [i for i in order[start : start + batch_size] if len(encoded[i][0]) > max(1, encoded[i][1])]
            bar.update(min(batch_size, len(order) - start))
            if not chunk:
                continue
            width = max(len(encoded[i][0]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            attention = torch.zeros((len(chunk), width), dtype=torch.long)
            scored = torch.zeros((len(chunk), width), dtype=torch.bool)  # position t scored: predicts token t+1
            for row, i in enumerate(chunk):
                seq, first = encoded[i]
                ids[row, : len(seq)] = torch.tensor(seq)
                attention[row, : len(seq)] = 1
                scored[row, max(first, 1) - 1 : len(seq) - 1] = True
            logits = head.logits(model, ids.to(device), attention.to(device), scored)  # (K, V)
            targets = torch.roll(ids, -1, dims=1)[scored].to(logits.device)  # (K,): the next tokens
            token_nll = _token_nll(logits, targets)
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
