"""The starter modules shipped for smollm2-135m: complete, small, traceable, and loadable on the packaged base."""

import hashlib
import json

import pytest
import torch
from safetensors import safe_open

from loracompose.compose.bank import ModuleBank, discover_modules
from loracompose.models import load_base
from loracompose.steer import STARTER_ROOT, resolve_steering, starter_modules_dir
from loracompose.modules import read_module

STARTER = STARTER_ROOT / "smollm2-135m"
EXPECTED = {"positive", "negative", "business", "entertainment", "politics", "sport", "tech"}
LIMIT_MB = 30  # the budget for the whole shipped set


def test_the_starter_set_is_complete_small_and_records_how_it_was_made():
    modules = discover_modules(starter_modules_dir("smollm2-135m"))
    labels = {read_module(p).label for p in modules.values()}
    assert labels == EXPECTED
    size = sum(f.stat().st_size for f in STARTER.rglob("*") if f.is_file())
    assert size < LIMIT_MB * 2**20
    for name, path in modules.items():
        meta = json.loads((path / "loracompose.json").read_text())
        build = meta["build"]
        assert build["command"].startswith("python -m loracompose.starter.build configs/")
        assert build["commit"] and build["config_sha256"] and build["adapter_dtype"] == "bfloat16"
        assert all(len(d["content_hash"]) == 64 for d in meta["datasets"])
        with safe_open(str(path / "adapter_model.safetensors"), "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"BF16"}


@pytest.mark.slow
def test_every_starter_module_loads_on_the_packaged_base_and_moves_its_attribute():
    from loracompose.compose.fused import ComposedModel

    base = load_base("smollm2-135m", quantize=None)
    paths = discover_modules(starter_modules_dir("smollm2-135m"))
    bank = ModuleBank(base.model, paths, base.fingerprint)  # checks the recorded fingerprint, shapes, finiteness
    composed = ComposedModel(base.model, bank)
    tok = base.tokenizer

    def log_probs(prompt: str, composition: dict) -> torch.Tensor:
        composed.set_weights(composed.weights_for([composition]))
        with torch.no_grad():
            logits = base.model(tok(prompt, return_tensors="pt").input_ids).logits[0, -1]
        assert torch.isfinite(logits).all()
        return torch.log_softmax(logits, -1)

    def first_token(word: str) -> int:
        return tok(" " + word, add_special_tokens=False).input_ids[0]

    try:
        # sentiment: P(" great") / P(" terrible") after "The movie was" rises under positive, falls under negative
        def margin(composition):
            lp = log_probs("The movie was", composition)
            return float(lp[first_token("great")] - lp[first_token("terrible")])

        assert margin({"positive@rotten_tomatoes": 1.0}) > margin({}) > margin({"negative@rotten_tomatoes": 1.0})
        # topic: each topic module makes its own topic word likelier after a neutral opening
        words = {"sport": "match", "business": "company", "politics": "government", "tech": "software",
                 "entertainment": "film"}
        for topic, word in words.items():
            name = f"{topic}@bbc"
            assert log_probs("The news today:", {name: 1.0})[first_token(word)] > \
                log_probs("The news today:", {})[first_token(word)], name
    finally:
        composed.detach()
