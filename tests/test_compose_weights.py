"""Weight-level methods against PEFT's add_weighted_adapter and against output-sum."""

import pytest
import torch
from peft import PeftModel

from compose_helpers import peft_weighted
from loracompose import LoraComposeError
from loracompose.compose.bank import ModuleBank
from loracompose.models import linear_layers
from loracompose.compose.fused import ComposedModel
from loracompose.compose.merge import merge_composition, merged_module, write_merged
from loracompose.compose.weight_methods import MergeOptions
from loracompose.models import load_base
from loracompose.testing import random_adapter

IDS = torch.tensor([[1, 17, 300, 4000, 52, 9, 8, 77]])


@pytest.fixture(scope="module")
def same_rank(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("same-rank")
    return {n: random_adapter(tiny_model_dir, root / n, seed=s, alpha=a) for n, s, a in
            [("pos", 11, 8.0), ("neg", 12, 4.0), ("sport", 13, 8.0)]}


@pytest.fixture(scope="module")
def mixed_rank(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed-rank")
    return {"pos": random_adapter(tiny_model_dir, root / "pos", seed=21, rank=4),
            "neg": random_adapter(tiny_model_dir, root / "neg", seed=22, rank=8, alpha=2,
                                targets=("k_proj", "o_proj", "gate_proj"))}


def logits_of(model):
    with torch.no_grad():
        return model(IDS).logits


def seed_at_first_merge(monkeypatch, seed):
    """PEFT initialises the new adapter (drawing random numbers) before merging; seed the
    RNG right where the merge of the first layer starts, as loracompose does, so both
    draw DARE's masks from the same stream."""
    from peft.tuners.lora.model import LoraModel

    original = LoraModel._generalized_task_arithmetic_weighted_adapter
    state = {"first": True}

    def seeded(self, *args, **kwargs):
        if state["first"]:
            torch.manual_seed(seed)
            state["first"] = False
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LoraModel, "_generalized_task_arithmetic_weighted_adapter", seeded)


def ours(model_dir, adapters, weights, method, options=MergeOptions()):
    base = load_base(str(model_dir), quantize=None)
    bank = ModuleBank(base.model, adapters, base.fingerprint)
    pairs = merge_composition(bank, weights, method, list(linear_layers(base.model)), options)
    composed = ComposedModel(base.model, ModuleBank.from_loaded([merged_module(pairs, "merged")]))
    with composed.composition(torch.ones(1, 1)):
        return logits_of(composed.model)


def output_sum(model_dir, adapters, weights):
    base = load_base(str(model_dir), quantize=None)
    composed = ComposedModel(base.model, ModuleBank(base.model, adapters, base.fingerprint))
    with composed.composition(composed.weights_for([weights])):
        return logits_of(composed.model)


def test_weights_average_is_peft_linear_with_normalised_weights(tiny_model_dir, same_rank):
    weights = {"pos": 2.0, "neg": 1.0, "sport": 1.0}
    normalised = {n: w / 4.0 for n, w in weights.items()}
    expected = peft_weighted(tiny_model_dir, same_rank, normalised, "linear", IDS)
    got = ours(tiny_model_dir, same_rank, weights, "weights-average")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)  # same tensors, float32 rounding
    # and it is not the sum of the updates: the cross terms B_i·A_j move the logits
    exact = output_sum(tiny_model_dir, same_rank, normalised)
    assert (got - exact).abs().max() > 1e-2


@pytest.mark.parametrize("method, combination, options", [
    ("ties", "ties", dict(density=0.5, majority_sign_method="total")),
    ("magnitude-prune", "magnitude_prune", dict(density=0.5)),
    ("dare-linear", "dare_linear", dict(density=0.7)),
    ("dare-ties", "dare_ties", dict(density=0.7, majority_sign_method="total")),
])
def test_pruning_merges_equal_peft(tiny_model_dir, same_rank, method, combination, options, monkeypatch):
    weights = {"pos": 0.8, "neg": -0.5, "sport": 1.0}
    seed_at_first_merge(monkeypatch, 5)
    expected = peft_weighted(tiny_model_dir, same_rank, weights, combination, IDS, seed=5, **options)
    got = ours(tiny_model_dir, same_rank, weights, method, MergeOptions(seed=5, **options))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_delta_sum_equals_output_sum_with_any_ranks(tiny_model_dir, mixed_rank):
    weights = {"pos": 0.9, "neg": -1.2}
    exact = output_sum(tiny_model_dir, mixed_rank, weights)
    got = ours(tiny_model_dir, mixed_rank, weights, "delta-sum")
    torch.testing.assert_close(got, exact, rtol=1e-5, atol=1e-5)  # the same sum, factored differently


def test_delta_svd_at_full_rank_is_exact_and_truncation_is_close(tiny_model_dir, mixed_rank):
    weights = {"pos": 0.9, "neg": -1.2}
    exact = output_sum(tiny_model_dir, mixed_rank, weights)
    full = ours(tiny_model_dir, mixed_rank, weights, "delta-svd", MergeOptions(svd_rank=12))
    torch.testing.assert_close(full, exact, rtol=1e-4, atol=1e-4)  # SVD in float32: ~1e-6 relative per entry
    low = ours(tiny_model_dir, mixed_rank, weights, "delta-svd", MergeOptions(svd_rank=2))
    base = logits_of(load_base(str(tiny_model_dir), quantize=None).model)
    assert (low - exact).abs().max() < (base - exact).abs().max()  # a rank-2 sketch is closer than nothing


def test_rank_mismatch_is_refused_for_entrywise_merges(tiny_model_dir, mixed_rank):
    base = load_base(str(tiny_model_dir), quantize=None)
    bank = ModuleBank(base.model, mixed_rank, base.fingerprint)
    with pytest.raises(LoraComposeError, match=r"same rank; got pos: rank \[4\], neg: rank \[8\]"):
        merge_composition(bank, {"pos": 1, "neg": 1}, "weights-average", list(linear_layers(base.model)))


def test_written_adapter_loads_with_plain_peft_and_reproduces_output_sum(tiny_model_dir, mixed_rank, tmp_path):
    weights = {"pos": 0.9, "neg": -1.2}
    base = load_base(str(tiny_model_dir), quantize=None)
    bank = ModuleBank(base.model, mixed_rank, base.fingerprint)
    out = write_merged(bank, weights, "delta-sum", list(linear_layers(base.model)), tmp_path / "exported",
                       base_model_name=str(tiny_model_dir), fingerprint=base.fingerprint)
    fresh = load_base(str(tiny_model_dir), quantize=None).model
    plain = PeftModel.from_pretrained(fresh, str(out)).eval()
    torch.testing.assert_close(logits_of(plain), output_sum(tiny_model_dir, mixed_rank, weights),
                               rtol=1e-5, atol=1e-5)
    import json

    config = json.loads((out / "adapter_config.json").read_text())
    # no layer is adapted by both modules here, so the widest layer has rank 8; scale alpha/r = 1
    assert config["r"] == 8 and config["lora_alpha"] == 8
