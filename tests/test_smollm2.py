"""Slower checks on the real packaged SmolLM2-135M (about a minute)."""

import pytest

from loracompose.decoding import SamplingConfig
from loracompose.generate import Steerer
from loracompose.models import load_base
from loracompose.train import TrainConfig, train_module

pytestmark = pytest.mark.slow


def test_smollm2_loads_in_nf4_and_generates(smollm2_dir):
    import bitsandbytes as bnb

    base = load_base("smollm2-135m", quantize="nf4")
    assert isinstance(base.model.model.layers[0].mlp.down_proj, bnb.nn.Linear4bit)
    assert base.fingerprint["num_hidden_layers"] == 30 and base.fingerprint["vocab_size"] == 49152
    steerer = Steerer(base.model, base.tokenizer, None, "smollm2-135m")
    config = SamplingConfig(max_new_tokens=12)
    first = steerer.generate(["The movie was"], {}, seeds=[5], samples=2, sampling=config)
    again = steerer.generate(["The movie was"], {}, seeds=[5], samples=2, sampling=config)
    assert [r["text"] for r in first] == [r["text"] for r in again]  # seeded
    assert all(len(r["text"].split()) >= 3 for r in first)  # real words, not an empty string


def test_one_training_step_on_smollm2(tmp_path):
    config = TrainConfig(model="smollm2-135m", datasets=["rotten_tomatoes"], label="negative", steps=1,
                         batch_size=2, seq_len=32, eval_every=0, eval_rows=2, save_every=0)
    trained = train_module(config, tmp_path / "negative@rotten_tomatoes", progress=False)
    training = trained.metadata["training"]
    assert training["steps"] == 1 and 0 < training["train_loss"] < 10  # a trained LM, not ln(49152)
    assert training["validation_loss"] is not None
    assert trained.metadata["base"]["source"]["spec"] == "smollm2-135m"
