"""Sequence packing for causal-LM training without cross-document attention.

Short texts (tweets: ~25 tokens) padded to a 64-token row waste most of the
compute. Packing puts several documents in one row:

    row:        [d1 d1 d1 EOS | d2 d2 EOS | d3 d3 d3 d3 EOS | pad pad]
    positions:  [0  1  2  3   | 0  1  2   | 0  1  2  3  4   | 0   1  ]
    labels:     [-  d1 d1 EOS | -  d2 EOS | -  d3 d3 d3 EOS | -   -  ]

Position ids restart at every document. With no attention mask and no KV cache,
transformers (`masking_utils.find_packed_sequence_indices`) turns restarting
position ids into a block-diagonal causal mask, so a document attends only to
itself, and the first token of each document is not predicted from the one
before it (its label is -100). The summed loss of a packed row therefore equals
the summed loss of its documents run one by one (tested).

Written here because transformers' `DataCollatorWithFlattening` flattens a whole
batch into one row of unbounded length; this keeps fixed (B, T) rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


def tokenize_documents(tokenizer, texts: list[str], max_tokens: int, long_texts: str = "cut") -> list[list[int]]:
    """Token ids per text, each piece at most `max_tokens`; a text's last piece gets EOS.

    Special tokens are added as the tokenizer does by default: a model trained
    with a BOS at the start of every text (Gemma, Llama) gets one here too, and
    at generation time (SmolLM2's tokenizer adds none).

    long_texts="cut" keeps the first `max_tokens` tokens of a longer text (its
    opening); "chunk" splits it into consecutive pieces of `max_tokens`, so all of
    it is trained on (each piece then starts mid-text, at position 0).
    """
    if long_texts not in ("cut", "chunk"):
        raise ValueError(f"long_texts must be 'cut' or 'chunk', got {long_texts!r}")
    if not texts:  # e.g. a dataset with no validation texts: tokenizers reject an empty batch
        return []
    eos = tokenizer.eos_token_id
    if long_texts == "cut":
        encoded = tokenizer(texts, truncation=True, max_length=max_tokens)["input_ids"]
        return [ids + [eos] if len(ids) < max_tokens and ids[-1] != eos else ids for ids in encoded if ids]
    pieces = []
    for ids in tokenizer(texts)["input_ids"]:
        ids = ids if ids and ids[-1] == eos else ids + [eos]
        pieces += [ids[start : start + max_tokens] for start in range(0, len(ids), max_tokens)]
    return [p for p in pieces if len(p) > 1]


def pack_documents(documents: list[list[int]], seq_len: int, pad_id: int) -> list[dict[str, list[int]]]:
    """Greedily pack documents, in order, into rows of exactly `seq_len` tokens.

    Each row is a dict of `input_ids`, `position_ids`, `labels` (lists of length
    seq_len) and `n_tokens` (real, non-padding tokens). Documents longer than
    seq_len must have been cut by `tokenize_documents`.
    """
    rows: list[dict[str, list[int]]] = []
    ids: list[int] = []
    positions: list[int] = []
    labels: list[int] = []

    def close_row():
        n_real = len(ids)
        pad = seq_len - n_real
        rows.append({
            "input_ids": ids + [pad_id] * pad,
            "position_ids": positions + list(range(pad)),
            "labels": labels + [IGNORE_INDEX] * pad,
            "n_tokens": n_real,
        })

    for doc in documents:
        if len(doc) > seq_len:
            raise ValueError(f"document of {len(doc)} tokens does not fit a row of {seq_len}")
        if len(ids) + len(doc) > seq_len:
            close_row()
            ids, positions, labels = [], [], []
        ids += doc
        positions += range(len(doc))
        labels += [IGNORE_INDEX] + doc[1:]
    if ids:
        close_row()
    return rows


@dataclass
class PackedCollator:
    """Stack packed rows into (B, T) tensors.

    Also counts the real (non-padding) tokens of the rows marked `"train": True`
    that it has served — the throughput that matters, which Trainer's own
    counter cannot give when the pad token is also EOS.
    """

    real_train_tokens: int = 0

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        self.real_train_tokens += sum(r["n_tokens"] for r in rows if r.get("train"))
        return {key: torch.tensor([r[key] for r in rows]) for key in ("input_ids", "position_ids", "labels")}
