"""The one composition planner: known plans per level, its refusals, and a new method as one registry entry."""

import pytest
import torch

from loracompose import LoraComposeError
from loracompose.compose import methods
from loracompose.compose.bank import ModuleBank
from loracompose.compose.methods import METHODS, SERVED_METHODS, WEIGHT_METHODS, Method
from loracompose.compose.plan import MERGED, fused_for, plan_composition
from loracompose.decoding import SamplingConfig
from loracompose.generate import Steerer
from loracompose.models import load_base
from loracompose.testing import random_adapter

SHORT = SamplingConfig(max_new_tokens=8)


def test_output_level_plans():
    plan = plan_composition({"pos": 2.0, "sport": -1.0}, "output-sum")
    assert plan.members == ({"pos": 2.0, "sport": -1.0},) and plan.coefficients is None
    mean = plan_composition({"pos": 3.0, "sport": 1.0}, "output-mean")
    assert mean.members == ({"pos": 0.75, "sport": 0.25},)
    assert mean.composition == {"pos": 3.0, "sport": 1.0}  # what records carry: the user's weights


def test_logit_sum_members_and_coefficients():
    plan = plan_composition({"pos": 1.5, "base": 1.0, "neg": -0.5, "sport": 0.0}, "logit-sum")
    # base first, then modules in order; λ = 0 members dropped
    assert plan.members == ({}, {"pos": 1.0}, {"neg": 1.0})
    assert plan.coefficients == (1.0, 1.5, -0.5)
    assert plan.modules == ["pos", "neg", "sport"]
    assert plan_composition({"base": 2.0}, "logit-sum").members == ({},)


def test_weight_level_plans_one_merged_member():
    plan = plan_composition({"pos": 3.0, "neg": 1.0}, "weights-average")
    assert plan.weights == {"pos": 0.75, "neg": 0.25}  # weights-average normalises first
    assert plan.members == ({MERGED: 1.0},) and plan.coefficients is None


def test_the_bare_base():
    for method in METHODS:
        plan = plan_composition({}, method)
        assert plan.is_base and plan.rows(None) == (None, None)


@pytest.mark.parametrize("composition, method, message", [
    ({"pos": 1.0, "neg": -1.0}, "output-mean", "output-mean weights sum to 0"),
    ({"pos": 1.0, "neg": -1.0}, "weights-average", "weights-average weights sum to 0"),
    ({"pos": 0.0, "base": 0.0}, "logit-sum", "logit-sum needs at least one member with a non-zero weight"),
    ({"base": 1.0, "pos": 1.0}, "output-sum", "'base' is a member only for logit-sum"),
    ({"pos": 1.0}, "sum", "unknown method 'sum'; accepted: output-sum"),
])
def test_refusals(composition, method, message):
    with pytest.raises(LoraComposeError, match=message):
        plan_composition(composition, method)


def test_registry_derives_what_is_served():
    assert SERVED_METHODS == ("output-sum", "output-mean", "logit-sum")
    assert set(WEIGHT_METHODS) == {m.name for m in METHODS.values() if m.merge is not None}
    with pytest.raises(ValueError, match="a merge function exactly when the level is 'weight'"):
        Method("broken", "weight", "no merge")
    with pytest.raises(ValueError, match="a members function exactly when the level is 'decoding'"):
        Method("broken", "decoding", "no members")


@pytest.fixture(scope="module")
def steerer(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("plan-adapters")
    paths = {"pos": random_adapter(tiny_model_dir, root / "pos", seed=41),
             "neg": random_adapter(tiny_model_dir, root / "neg", seed=42)}
    base = load_base(str(tiny_model_dir), quantize=None)
    return Steerer(base.model, base.tokenizer, ModuleBank(base.model, paths, base.fingerprint), "tiny")


def test_rows_over_a_bank(steerer):
    composed = fused_for(plan_composition({"pos": 1.0, "neg": 1.0}, "output-sum"), steerer.model, steerer.bank,
                         steerer.layer_order)
    try:
        rows, lambdas = plan_composition({"neg": 2.0, "base": 1.0}, "logit-sum").rows(composed)
        torch.testing.assert_close(rows, torch.tensor([[0.0, 0.0], [0.0, 1.0]]))  # bank order: pos, neg
        torch.testing.assert_close(lambdas, torch.tensor([1.0, 2.0]))
    finally:
        composed.detach()


def test_a_new_method_is_one_registry_entry(steerer, monkeypatch):
    """An output-level method that doubles every weight, added as one entry plus its function: generation
    runs it, and it equals output-sum at the doubled weights (token for token, same seeds)."""
    doubled = Method("output-double", "output", "output-sum at twice the weights",
                     prepare=lambda w: {n: 2 * v for n, v in w.items()})
    monkeypatch.setitem(methods.METHODS, doubled.name, doubled)
    prompts = ["The movie", "The lake"]
    new = steerer.generate(prompts, {"pos": 0.5, "neg": -0.25}, "output-double", seeds=[5], samples=2,
                           sampling=SHORT)
    same = steerer.generate(prompts, {"pos": 1.0, "neg": -0.5}, "output-sum", seeds=[5], samples=2, sampling=SHORT)
    plain = steerer.generate(prompts, {"pos": 0.5, "neg": -0.25}, "output-sum", seeds=[5], samples=2,
                             sampling=SHORT)
    assert [r["text"] for r in new] == [r["text"] for r in same]
    assert [r["text"] for r in new] != [r["text"] for r in plain]  # the weights mattered on this model
    assert new[0]["composition"]["method"] == "output-double"
