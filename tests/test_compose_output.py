"""Output-level composition: the fused layers against PEFT's own multi-adapter forward."""

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from compose_helpers import peft_output_sum
from loracompose.compose.bank import ModuleBank
from loracompose.compose.fused import ComposedModel
from loracompose.models import load_base
from loracompose.testing import random_adapter

IDS = torch.tensor([[1, 17, 300, 4000, 52, 9, 8, 77], [5, 6, 7, 8, 9, 10, 11, 12]])


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {
        "pos": random_adapter(tiny_model_dir, root / "pos", seed=1),
        "neg": random_adapter(tiny_model_dir, root / "neg", seed=2, rank=8, alpha=4, targets=("q_proj", "o_proj",
                                                                                             "up_proj")),
        "topic": random_adapter(tiny_model_dir, root / "topic", seed=3, rank=2, alpha=2),
    }


def fused_logits(model_dir, adapters, weights, quantize):
    base = load_base(str(model_dir), quantize=quantize)
    composed = ComposedModel(base.model, ModuleBank(base.model, {n: adapters[n] for n in adapters}, base.fingerprint))
    with torch.no_grad(), composed.composition(composed.weights_for([weights])):
        return composed.model(IDS).logits


@pytest.mark.parametrize("quantize, tol", [(None, 1e-5), ("nf4", 1e-4)])
def test_output_sum_equals_peft_forward(tiny_model_dir, adapters, quantize, tol):
    # Same float32 arithmetic in another order (fused matmul vs a per-adapter loop):
    # rounding only, ~1e-6 on logits of size ~1. NF4 dequantises the same way in both.
    weights = {"pos": 0.7, "neg": -0.4, "topic": 1.3}
    expected = peft_output_sum(tiny_model_dir, adapters, weights, IDS, quantize)
    got = fused_logits(tiny_model_dir, adapters, weights, quantize)
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)
    bare = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(IDS).logits
    assert (got - bare).abs().max() > 0.1  # the modules really change the output


def test_zero_weights_give_the_base_and_one_module_gives_plain_peft(tiny_model_dir, adapters):
    base = load_base(str(tiny_model_dir), quantize=None)
    with torch.no_grad():
        bare = base.model(IDS).logits
    composed = ComposedModel(base.model, ModuleBank(base.model, adapters, base.fingerprint))
    with torch.no_grad():
        with composed.composition(composed.weights_for([{}])):
            zero = composed.model(IDS).logits
        with composed.composition(composed.weights_for([{"pos": 1.0}])):
            one = composed.model(IDS).logits
        with composed.composition(composed.weights_for([{"pos": -1.0}])):
            minus = composed.model(IDS).logits
    torch.testing.assert_close(zero, bare, rtol=0, atol=0)  # exactly: zero coefficients add exact zeros
    plain = PeftModel.from_pretrained(load_base(str(tiny_model_dir), quantize=None).model, str(adapters["pos"]))
    with torch.no_grad():
        torch.testing.assert_close(one, plain.eval()(IDS).logits, rtol=1e-5, atol=1e-5)
    # Weight −1 negates the update at every layer: check it on one layer's output directly.
    layer = composed.model.model.layers[0].self_attn.q_proj
    x = torch.randn(2, 3, 64)
    with torch.no_grad():
        composed.set_weights(composed.weights_for([{"pos": 1.0}]))
        up = layer(x) - layer.base_layer(x)
        composed.set_weights(composed.weights_for([{"pos": -1.0}]))
        down = layer(x) - layer.base_layer(x)
    composed.set_weights(None)
    torch.testing.assert_close(down, -up)
    assert (minus - one).abs().max() > 0.1


def test_a_mixed_batch_equals_each_composition_alone(tiny_model_dir, adapters):
    base = load_base(str(tiny_model_dir), quantize=None)
    composed = ComposedModel(base.model, ModuleBank(base.model, adapters, base.fingerprint))
    comps = [{"pos": 1.0}, {"neg": 0.5, "topic": 1.0}, {"pos": -0.3, "neg": 0.2, "topic": 0.9}]
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10], [11, 12, 13, 14]])
    with torch.no_grad():
        with composed.composition(composed.weights_for(comps)):
            mixed = composed.model(ids).logits
        for row, comp in enumerate(comps):
            with composed.composition(composed.weights_for([comp])):
                alone = composed.model(ids[row : row + 1]).logits
            # batch of 3 vs batch of 1: same maths, matmul blocking may differ in the last bits
            torch.testing.assert_close(mixed[row : row + 1], alone, rtol=1e-5, atol=1e-5)
