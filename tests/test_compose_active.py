"""The fused layers' shortcuts against the plain sum: active-subset gather and one A matmul per shared input."""

import pytest
import torch

from loracompose.compose import fused
from loracompose.compose.bank import LoadedModule, LoraPair, ModuleBank
from loracompose.compose.fused import ComposedModel
from loracompose.models import linear_layers, load_base
from loracompose.modules import ModuleInfo
from loracompose.testing import random_adapter

ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
IDS = torch.tensor([[3, 4, 5, 6, 7], [7, 8, 9, 10, 11], [11, 12, 13, 14, 15], [2, 30, 40, 50, 60]])


def random_module(model, name: str, seed: int, rank: int = 4) -> LoadedModule:
    """A module in memory with random A and B (B ≠ 0) on every projection; ranks 2-5 so rows differ per module."""
    generator = torch.Generator().manual_seed(seed)
    layers = {}
    for layer, base in linear_layers(model).items():
        if layer.rpartition(".")[2] in ALL:
            A = torch.randn(rank, base.in_features, generator=generator) * 0.3
            B = torch.randn(base.out_features, rank, generator=generator) * 0.3
            layers[layer] = LoraPair(A, B, scale=2.0 / rank)
    info = ModuleInfo(path=None, name=name, adapter_config={"r": rank, "lora_alpha": 2.0}, metadata={})
    return LoadedModule(info, layers)


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return load_base(str(tiny_model_dir), quantize=None)


@pytest.fixture(scope="module")
def big_bank(base, tiny_model_dir, tmp_path_factory):
    """64 modules: two plain PEFT adapters read from disk and 62 in memory."""
    root = tmp_path_factory.mktemp("adapters")
    on_disk = ModuleBank(base.model, {
        "pos": random_adapter(tiny_model_dir, root / "pos", seed=1, targets=ALL),
        "neg": random_adapter(tiny_model_dir, root / "neg", seed=2, rank=8, alpha=4, targets=("q_proj", "up_proj")),
    }, base.fingerprint)
    made = [random_module(base.model, f"m{i}", seed=100 + i, rank=2 + i % 4) for i in range(62)]
    return ModuleBank.from_loaded(on_disk.modules + made)


def logits(model, ids, composed, weights):
    with torch.no_grad(), composed.composition(weights):
        return model(ids).logits


def test_a_64_module_bank_with_3_active_equals_a_3_module_bank_per_sequence(base, big_bank):
    compositions = [{"pos": 0.8, "m5": -0.6, "m40": 1.2}, {"neg": 1.0, "m5": 0.4}, {"m61": 0.9, "m0": 0.5, "pos": -1.0},
                    {}]
    composed = ComposedModel(base.model, big_bank)
    try:
        mixed = logits(base.model, IDS, composed, composed.weights_for(compositions))
        # one change of weights with the same module set reuses the gathered rows, and still gives this batch's sums
        same_set = [{name: 2 * w for name, w in c.items()} for c in compositions]
        doubled = logits(base.model, IDS, composed, composed.weights_for(same_set))
    finally:
        composed.detach()
    with torch.no_grad():
        bare = base.model(IDS).logits
    for row, composition in enumerate(compositions):
        names = list(composition) or ["pos"]
        small = ComposedModel(base.model, ModuleBank.from_loaded([big_bank[n] for n in names]))
        try:
            alone = logits(base.model, IDS[row:row + 1], small, small.weights_for([composition]))
            twice = logits(base.model, IDS[row:row + 1], small, small.weights_for([same_set[row]]))
        finally:
            small.detach()
        # same float32 maths, other summation order and matmul blocking (batch 4 vs 1): rounding only
        torch.testing.assert_close(mixed[row:row + 1], alone, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(doubled[row:row + 1], twice, rtol=1e-5, atol=1e-5)
        if composition:
            assert (alone - bare[row:row + 1]).abs().max() > 0.1  # the modules really change the output
    torch.testing.assert_close(mixed[3:], bare[3:], rtol=0, atol=0)  # a row with no module is the base exactly


def test_the_gather_runs_once_per_module_set_not_per_weight_change(base, big_bank):
    composed = ComposedModel(base.model, big_bank)
    try:
        state = composed.state
        composed.set_weights(composed.weights_for([{"pos": 1.0, "m3": 0.5}]))
        assert state.active() == (0, 5)
        first = state.active_version
        composed.set_weights(composed.weights_for([{"pos": 0.2}, {"m3": -1.0}]))  # same set, other weights
        assert state.active() == (0, 5) and state.active_version == first
        composed.set_weights(composed.weights_for([{"m10": 1.0}]))
        assert state.active() == (12,) and state.active_version == first + 1
        composed.set_weights(composed.weights_for([{}]))
        assert state.active() is None
        w = torch.zeros(1, len(big_bank), requires_grad=True)  # learn-weights: every weight has a gradient
        composed.set_weights(w)
        assert state.active() == tuple(range(len(big_bank)))
    finally:
        composed.detach()


def test_one_a_matmul_for_q_k_v_equals_separate_a(base, big_bank, monkeypatch):
    weights = {"pos": 0.7, "neg": -0.4, "m7": 1.3}
    modules = ModuleBank.from_loaded([big_bank[n] for n in weights])
    shared = ComposedModel(base.model, modules)
    attention, mlp = base.model.model.layers[0].self_attn, base.model.model.layers[0].mlp
    try:
        assert attention.q_proj.group is attention.k_proj.group is attention.v_proj.group
        assert mlp.gate_proj.group is mlp.up_proj.group and mlp.down_proj.group is not mlp.up_proj.group
        got = logits(base.model, IDS, shared, shared.weights_for([weights] * 4))
        got_one = logits(base.model, IDS, shared, shared.weights_for([weights]))  # folded coefficients
        x, other = torch.randn(2, 3, 64), torch.randn(2, 3, 64)
        with torch.no_grad():
            shared.set_weights(shared.weights_for([weights]))
            q, k_other, k, v = attention.q_proj(x), attention.k_proj(other), attention.k_proj(x), attention.v_proj(x)
            x.mul_(2)  # modified in place: the group must not reuse the projection of the old values
            q_doubled = attention.q_proj(x)
    finally:
        shared.detach()
    monkeypatch.setattr(fused, "SHARED_INPUT", ())
    separate = ComposedModel(base.model, modules)
    try:
        assert attention.q_proj.group is not attention.k_proj.group
        expected = logits(base.model, IDS, separate, separate.weights_for([weights] * 4))
        with torch.no_grad():
            separate.set_weights(separate.weights_for([weights]))
            x.div_(2)
            layers = [attention.q_proj(x), attention.k_proj(other), attention.k_proj(x), attention.v_proj(x),
                      attention.q_proj(2 * x)]
    finally:
        separate.detach()
    # same products, another matmul shape ((B·T, R_qkv) at once vs three): rounding only
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_one, expected, rtol=1e-5, atol=1e-5)
    for a, b in zip([q, k_other, k, v, q_doubled], layers):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
