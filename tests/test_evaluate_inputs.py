"""Bad input gets one clear message: generations files, targets, user judges, settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from loracompose import LoraComposeError
from loracompose.evaluate.attributes import ATTRIBUTES, parse_targets
from loracompose.evaluate.generations import read_generations
from loracompose.evaluate.hf_judge import MAPPING_FILE, load_hf_judge
from loracompose.evaluate.panel import JudgeSettings

KNOWN = {a: s.labels for a, s in ATTRIBUTES.items()}


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_generations_are_read_and_keyed(tmp_path):
    rows = [{"prompt": "The cat", "text": " sat.", "seed": 1, "sample": 0, "model": "m"},
            {"prompt": "The cat", "text": " ran.", "seed": 1, "sample": 1, "model": "m"},
            {"prompt": "The dog", "text": " slept.", "seed": 1, "sample": 0, "model": "m", "extra": [1]}]
    records = read_generations(write_lines(tmp_path / "g.jsonl", [json.dumps(r) for r in rows] + [""]))
    assert [r.key for r in records] == [("The cat", 0, 1), ("The cat", 1, 1), ("The dog", 0, 1)]
    assert records[2].extra == {"model": "m", "extra": [1]}


def test_records_without_sample_pair_by_order_within_prompt_and_seed(tmp_path):
    rows = [{"prompt": "A", "text": "1"}, {"prompt": "B", "text": "2"}, {"prompt": "A", "text": "3"},
            {"prompt": "A", "text": "4", "seed": 7}]
    records = read_generations(write_lines(tmp_path / "g.jsonl", [json.dumps(r) for r in rows]))
    assert [r.key for r in records] == [("A", 0, None), ("B", 0, None), ("A", 1, None), ("A", 0, 7)]


@pytest.mark.parametrize("lines,message", [
    ([], "is empty"),
    (["", "   "], "is empty"),
    (['{"prompt": "a", "text": "b"}', "{not json"], "line 2 is not valid JSON"),
    (['["prompt", "text"]'], "line 1 is a JSON list, not an object"),
    (['{"prompt": "a"}'], r"line 1 lacks the field\(s\) text; it has prompt \(required: prompt, text\)"),
    (['{"text": "a", "seed": 1}'], r"lacks the field\(s\) prompt"),
    (['{"prompt": "a", "text": 3}'], "field 'text' is a int, it must be a string"),
    (['{"prompt": "a", "text": "b", "sample": "x"}'], "'sample' must be an integer"),
    (['{"prompt": "a", "text": "b", "sample": 0}', '{"prompt": "a", "text": "c", "sample": 0}'],
     "lines 1 and 2 share prompt, sample and seed"),
    (['{"prompt": "a", "text": "b", "module": "pos"}', '{"prompt": "a", "text": "c", "module": "neg"}'],
     "mixes 2 systems"),
])
def test_bad_generations_files(tmp_path, lines, message):
    path = tmp_path / "gens.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(LoraComposeError, match=message):
        read_generations(path)


def test_missing_generations_file(tmp_path):
    with pytest.raises(LoraComposeError, match="does not exist"):
        read_generations(tmp_path / "nope.jsonl")


def test_targets_parse_and_bad_targets_name_what_is_accepted():
    assert parse_targets("sentiment=positive, topic=sport", KNOWN) == {"sentiment": "positive", "topic": "sport"}
    with pytest.raises(LoraComposeError, match="unknown attribute 'colour'.*accepted: sentiment: negative, positive"):
        parse_targets("colour=red", KNOWN)
    with pytest.raises(LoraComposeError, match="unknown label 'happy' for attribute 'sentiment'; its labels are "
                                               "negative, positive"):
        parse_targets("sentiment=happy", KNOWN)
    with pytest.raises(LoraComposeError, match="not of the form attribute=label"):
        parse_targets("positive", KNOWN)
    with pytest.raises(LoraComposeError, match="targeted twice"):
        parse_targets("sentiment=positive,sentiment=negative", KNOWN)
    with pytest.raises(LoraComposeError, match="no target given"):
        parse_targets(" , ", KNOWN)


def test_judge_settings_are_checked():
    with pytest.raises(LoraComposeError, match="embed_per_label=0 must be a whole number >= 1"):
        JudgeSettings(embed_per_label=0)
    with pytest.raises(LoraComposeError, match="tfidf_c"):
        JudgeSettings(tfidf_c=0.0)


# ---------------------------------------------------------------- user judges (HF classifiers)

def make_classifier(directory, id2label: dict[int, str]):
    """A tiny random BERT text classifier with MiniLM's tokenizer, saved as a HF directory."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from loracompose.evaluate.features import minilm_dir

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, id2label=id2label,
                        label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(directory)
    return directory


TEXTS = ["What a lovely day.", "This is awful.", "A plain sentence about tables and chairs."]


def test_hf_judge_with_attribute_labels_in_config(tmp_path):
    judge = load_hf_judge(make_classifier(tmp_path / "clf", {0: "negative", 1: "positive"}))
    assert (judge.attribute, judge.labels, judge.mapping) == ("sentiment", ["negative", "positive"],
                                                              {0: "negative", 1: "positive"})
    probs = judge.predict_proba(TEXTS)
    assert probs.shape == (3, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert judge.describe()["kind"] == "hf"


def test_hf_judge_mapping_file_drops_and_renormalises_unmapped_labels(tmp_path):
    directory = make_classifier(tmp_path / "clf3", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    (directory / MAPPING_FILE).write_text(json.dumps(
        {"attribute": "sentiment", "labels": {"LABEL_0": "negative", "LABEL_2": "positive"}}))
    judge = load_hf_judge(directory)
    with torch.no_grad():
        raw = judge.model(**judge.tokenizer(TEXTS, return_tensors="pt", padding=True)).logits.softmax(-1).numpy()
    expected = raw[:, [0, 2]] / raw[:, [0, 2]].sum(axis=1, keepdims=True)  # neutral (LABEL_1) dropped
    np.testing.assert_allclose(judge.predict_proba(TEXTS), expected, rtol=1e-5)


def test_hf_judge_errors(tmp_path):
    generic = make_classifier(tmp_path / "generic", {0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(LoraComposeError, match=f"has no label mapping: add {MAPPING_FILE}"):
        load_hf_judge(generic)
    (generic / MAPPING_FILE).write_text(json.dumps({"attribute": "sentiment", "labels": {"LABEL_7": "positive"}}))
    with pytest.raises(LoraComposeError, match="names model label 'LABEL_7', which the model lacks"):
        load_hf_judge(generic)
    (generic / MAPPING_FILE).write_text(json.dumps({"attribute": "sentiment", "labels": {"LABEL_0": "glad"}}))
    with pytest.raises(LoraComposeError, match="unknown sentiment label\\(s\\) glad; accepted: negative, positive"):
        load_hf_judge(generic)
    (generic / MAPPING_FILE).write_text("{broken")
    with pytest.raises(LoraComposeError, match="is not valid"):
        load_hf_judge(generic)
    with pytest.raises(LoraComposeError, match="is not a Hugging Face model directory"):
        load_hf_judge(tmp_path)


def test_hf_judge_weights_are_read_only_from_safetensors(tmp_path):
    """A judge saved as a pickled pytorch_model.bin is refused, never unpickled."""
    from transformers import BertForSequenceClassification

    directory = make_classifier(tmp_path / "clf", {0: "negative", 1: "positive"})
    model = BertForSequenceClassification.from_pretrained(directory)
    (directory / "model.safetensors").unlink()
    torch.save(model.state_dict(), directory / "pytorch_model.bin")  # what an older or hostile save leaves
    with pytest.raises(LoraComposeError, match="could not load judge model"):
        load_hf_judge(directory)
