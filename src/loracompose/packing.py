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

from collections import deque
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
    """Pack documents into rows of exactly `seq_len` tokens, best fit first.

    Each document goes into the open row with the least free space that still
    holds it (the earliest such row on a tie), or opens a new row. Taking the
    rows in order and closing one whenever the next document does not fit
    (next fit) left rows of short texts ~28% padding on tweets; best fit fills
    them to ~95% (measured by `benchmarks.training`), so a step trains on more
    real text for the same compute. Deterministic: the same documents give the
    same rows; each document's tokens, positions and labels are unchanged.

    Each row is a dict of `input_ids`, `position_ids`, `labels` (lists of length
    seq_len) and `n_tokens` (real, non-padding tokens), in the order rows were
    opened. Documents longer than seq_len must have been cut by `tokenize_documents`.
    """
    row_docs: list[list[list[int]]] = []  # the documents of each row
    free: list[int] = []  # free tokens of each row
    by_free: list[deque[int]] = [deque() for _ in range(seq_len + 1)]  # free space → rows with it, oldest first
    for doc in documents:
        if len(doc) > seq_len:
            raise ValueError(f"document of {len(doc)} tokens does not fit a row of {seq_len}")
        # O(seq_len) per document: scan the free-space buckets upward from the document's length.
        row = next((by_free[space].popleft() for space in range(len(doc), seq_len) if by_free[space]), None)
        if row is None:
            row = len(row_docs)
            row_docs.append([])
            free.append(seq_len)
        row_docs[row].append(doc)
        free[row] -= len(doc)
        if free[row] > 0:
            by_free[free[row]].append(row)
    return [_row(docs, seq_len, pad_id) for docs in row_docs]


def _row(docs: list[list[int]], seq_len: int, pad_id: int) -> dict[str, list[int]]:
    ids = [token for doc in docs for token in doc]
    positions = [p for doc in docs for p in range(len(doc))]
    labels = [label for doc in docs for label in [IGNORE_INDEX] + doc[1:]]
    pad = seq_len - len(ids)
    return {"input_ids": ids + [pad_id] * pad, "position_ids": positions + list(range(pad)),
            "labels": labels + [IGNORE_INDEX] * pad, "n_tokens": len(ids)}


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
