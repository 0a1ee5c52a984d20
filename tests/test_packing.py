import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from loracompose.packing import IGNORE_INDEX, PackedCollator, pack_documents, tokenize_documents


def test_pack_documents_layout():
    rows = pack_documents([[5, 6, 1], [7, 1], [8, 9, 9, 9]], seq_len=6, pad_id=0)
    assert rows[0] == {"input_ids": [5, 6, 1, 7, 1, 0], "position_ids": [0, 1, 2, 0, 1, 0],
                       "labels": [IGNORE_INDEX, 6, 1, IGNORE_INDEX, 1, IGNORE_INDEX], "n_tokens": 5}
    assert rows[1] == {"input_ids": [8, 9, 9, 9, 0, 0], "position_ids": [0, 1, 2, 3, 0, 1],
                       "labels": [IGNORE_INDEX, 9, 9, 9, IGNORE_INDEX, IGNORE_INDEX], "n_tokens": 4}
    with pytest.raises(ValueError, match="does not fit"):
        pack_documents([[1] * 7], seq_len=6, pad_id=0)


def test_tokenize_documents_ends_complete_texts_with_eos(smollm2_dir):
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    short, long = tokenize_documents(tok, ["a short one", "word " * 100], max_tokens=16)
    assert short[-1] == tok.eos_token_id and len(short) < 16
    assert len(long) == 16 and long[-1] != tok.eos_token_id  # cut: the text did not end here


def test_collator_counts_only_training_tokens():
    rows = pack_documents([[5, 6, 1], [7, 1]], seq_len=4, pad_id=0)
    collator = PackedCollator()
    batch = collator([{**rows[0], "train": True}, rows[1]])
    assert batch["input_ids"].shape == (2, 4) and collator.real_train_tokens == 3


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_sum_of_separate_documents(tiny_model_dir, attn):
    """The block-diagonal mask from restarting position ids: no token sees another document."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attn).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = ["The film was a delight from start to end.", "Awful.", "I would watch it again, twice."]
    docs = tokenize_documents(tok, texts, max_tokens=32)
    (row,) = pack_documents(docs, seq_len=40, pad_id=tok.pad_token_id)
    batch = PackedCollator()([row])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        packed = torch.nn.functional.cross_entropy(logits[0, :-1], batch["labels"][0, 1:], reduction="sum",
                                                   ignore_index=IGNORE_INDEX)
        separate = 0.0
        for doc in docs:
            ids = torch.tensor([doc])
            doc_logits = model(input_ids=ids, use_cache=False).logits
            separate += torch.nn.functional.cross_entropy(doc_logits[0, :-1], ids[0, 1:], reduction="sum")
    # float32 sums of ~20 token losses in different kernel orders: agree to ~1e-5 relative.
    assert packed.item() == pytest.approx(separate.item(), rel=1e-5)
    # And the mask matters: with one causal mask over the row the loss differs.
    with torch.no_grad():
        plain = model(input_ids=batch["input_ids"], use_cache=False).logits
    leaked = torch.nn.functional.cross_entropy(plain[0, :-1], batch["labels"][0, 1:], reduction="sum",
                                               ignore_index=IGNORE_INDEX)
    assert abs(leaked.item() - separate.item()) > 1e-3


def test_chunking_long_texts_uses_all_of_them(smollm2_dir):
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    text = " ".join(f"word{i}" for i in range(60))
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    pieces = tokenize_documents(tok, [text], max_tokens=16, long_texts="chunk")
    # every token once, in order (a lone trailing EOS piece would carry no loss and is dropped)
    assert sum(pieces, []) in (ids, ids[:-1]) and all(len(p) <= 16 for p in pieces)
    assert len(pieces) == -(-len(ids) // 16) or len(ids) % 16 == 1
    with pytest.raises(ValueError, match="'cut' or 'chunk'"):
        tokenize_documents(tok, [text], max_tokens=16, long_texts="all")


class BosTokenizer:
    """Adds BOS=1 by default, like Gemma's and Llama's tokenizers; EOS=2; one id per character."""

    eos_token_id = 2

    def __call__(self, texts, truncation=False, max_length=None):
        ids = [[1] + [ord(c) for c in t] for t in texts]
        return {"input_ids": [i[:max_length] if truncation else i for i in ids]}


def test_documents_keep_the_bos_their_tokenizer_adds():
    assert tokenize_documents(BosTokenizer(), ["ab"], max_tokens=8) == [[1, 97, 98, 2]]
    assert tokenize_documents(BosTokenizer(), ["abcdef"], max_tokens=4, long_texts="chunk") == [
        [1, 97, 98, 99], [100, 101, 102, 2]]


@pytest.mark.parametrize("long_texts", ["cut", "chunk"])
def test_no_texts_give_no_documents_and_no_rows(smollm2_dir, long_texts):
    """A dataset without validation texts packs to nothing (no validation loss), not an error."""
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    documents = tokenize_documents(tokenizer, [], 16, long_texts)
    assert documents == [] and pack_documents(documents, 16, tokenizer.pad_token_id) == []
