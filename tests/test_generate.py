"""Sampling loop, logit-sum and generation records on the tiny model."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file

from loracompose import LoraComposeError
from loracompose.compose.bank import ModuleBank
from loracompose.compose.fused import ComposedModel
from loracompose.decoding import SamplingConfig, combine_members
from loracompose.generate import Steerer
from loracompose.prompts import PPLM_PROMPTS, load_prompts
from loracompose.models import load_base
from loracompose.testing import random_adapter

SHORT = SamplingConfig(max_new_tokens=8)


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("gen-adapters")
    return {"pos": random_adapter(tiny_model_dir, root / "pos", seed=31),
            "neg": random_adapter(tiny_model_dir, root / "neg", seed=32)}


@pytest.fixture(scope="module")
def steerer(tiny_model_dir, adapters):
    paths = adapters
    base = load_base(str(tiny_model_dir), quantize=None)
    return Steerer(base.model, base.tokenizer, ModuleBank(base.model, paths, base.fingerprint), "tiny")


def texts(records):
    return [r["text"] for r in records]


def test_combine_members_on_known_logits():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])  # expert, anti-expert of one sequence
    scores = combine_members(logits, torch.tensor([[1.0, -1.0]]))
    expected = torch.log_softmax(logits[0], -1) - torch.log_softmax(logits[1], -1)
    torch.testing.assert_close(scores[0], expected)
    single = combine_members(logits[:1], torch.tensor([[1.0]]))
    torch.testing.assert_close(torch.softmax(single, -1), torch.softmax(logits[:1], -1))


def test_same_command_same_text_and_batch_independence(steerer):
    prompts = ["The movie", "Once upon a time there", "The city"]
    together = steerer.generate(prompts, {"pos": 1.0}, seeds=[7], samples=2, sampling=SHORT)
    again = steerer.generate(prompts, {"pos": 1.0}, seeds=[7], samples=2, sampling=SHORT)
    assert texts(together) == texts(again)
    alone = steerer.generate(prompts[1:2], {"pos": 1.0}, seeds=[7], samples=2, sampling=SHORT)
    assert texts(alone) == texts(together)[2:4]  # per-sequence generators: neighbours don't matter
    other_seed = steerer.generate(prompts, {"pos": 1.0}, seeds=[8], samples=2, sampling=SHORT)
    assert texts(other_seed) != texts(together)


def test_logit_sum_with_one_member_equals_that_member(steerer):
    prompts = ["The movie", "The lake"]
    as_output = steerer.generate(prompts, {"pos": 1.0}, "output-sum", seeds=[3], samples=2, sampling=SHORT)
    as_logits = steerer.generate(prompts, {"pos": 1.0}, "logit-sum", seeds=[3], samples=2, sampling=SHORT)
    assert texts(as_output) == texts(as_logits)
    base = steerer.generate(prompts, {"base": 1.0}, "logit-sum", seeds=[3], samples=2, sampling=SHORT)
    bare = steerer.generate(prompts, {}, "output-sum", seeds=[3], samples=2, sampling=SHORT)
    assert texts(base) == texts(bare)


def test_every_method_generates_and_records_its_composition(steerer):
    for method in ["output-sum", "output-mean", "logit-sum", "delta-sum", "weights-average", "ties", "dare-ties"]:
        records = steerer.generate(["The road"], {"pos": 1.0, "neg": 0.5}, method, seeds=[1], sampling=SHORT)
        (record,) = records
        assert record["composition"]["method"] == method
        assert record["composition"]["weights"] == {"pos": 1.0, "neg": 0.5}
        assert record["generation"]["top_k"] == 50 and record["model"] == "tiny"
        json.dumps(record)


def continuation_log_likelihood(model, tokenizer, records) -> torch.Tensor:
    """Per record, Σ log p(token) over the tokens of `text` after `prompt`, under `model`."""
    totals = []
    for record in records:
        start = len(tokenizer(record["prompt"])["input_ids"])
        ids = torch.tensor([tokenizer(record["prompt"] + record["text"])["input_ids"]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1], -1)
        picked = logp.gather(1, ids[0, 1:, None])[:, 0]
        totals.append(picked[start - 1:].sum())
    return torch.stack(totals)


def test_expert_minus_anti_expert_moves_away_from_the_anti_expert(steerer, tiny_model_dir, adapters):
    prompts = PPLM_PROMPTS[:8]
    pushed = steerer.generate(prompts, {"base": 1.0, "pos": 2.0, "neg": -2.0}, "logit-sum", seeds=[2],
                              sampling=SHORT)
    expert = steerer.generate(prompts, {"base": 1.0, "pos": 2.0}, "logit-sum", seeds=[2], sampling=SHORT)
    plain = steerer.generate(prompts, {"base": 1.0}, "logit-sum", seeds=[2], sampling=SHORT)
    assert texts(pushed) != texts(plain)
    # How much more the anti-expert likes a text than the base does, Σ log p_neg − log p_base over its
    # tokens, scored by plain PEFT and the bare base. Subtracting the anti-expert must lower it against
    # the same expert alone and against the base (measured means over the 8 texts: −20.8 nats pushed,
    # −10.6 expert alone, −17.0 base).
    base = load_base(str(tiny_model_dir), quantize=None)
    anti = PeftModel.from_pretrained(load_base(str(tiny_model_dir), quantize=None).model, str(adapters["neg"]))
    models = {"base": base.model.eval(), "anti": anti.eval()}

    def anti_preference(records):
        scores = {n: continuation_log_likelihood(m, base.tokenizer, records) for n, m in models.items()}
        return (scores["anti"] - scores["base"]).mean().item()

    assert anti_preference(pushed) < anti_preference(expert) - 2
    assert anti_preference(pushed) < anti_preference(plain)


def test_bad_compositions(steerer, tiny_model_dir, tmp_path):
    with pytest.raises(LoraComposeError, match="unknown module 'sport'; known modules: pos, neg"):
        steerer.generate(["x"], {"sport": 1.0}, sampling=SHORT)
    with pytest.raises(LoraComposeError, match="unknown method 'sum'; accepted: output-sum"):
        steerer.generate(["x"], {"pos": 1.0}, "sum", sampling=SHORT)
    with pytest.raises(LoraComposeError, match="weights sum to 0"):
        steerer.generate(["x"], {"pos": 1.0, "neg": -1.0}, "output-mean", sampling=SHORT)
    composed = ComposedModel(steerer.model, steerer.bank)
    try:
        with pytest.raises(LoraComposeError, match=r"one value per module \(2\); got shape \(1, 3\)"):
            composed.set_weights(torch.ones(1, 3))
    finally:
        composed.detach()


def test_modules_that_do_not_fit_are_refused(tiny_model_dir, tmp_path, smollm2_dir):
    base = load_base(str(tiny_model_dir), quantize=None)
    good = random_adapter(tiny_model_dir, tmp_path / "good", seed=41)
    weights = load_file(str(good / "adapter_model.safetensors"))
    key = next(k for k in weights if "lora_B" in k)
    poisoned = {k: v.clone() for k, v in weights.items()}
    poisoned[key][0, 0] = float("nan")
    bad = tmp_path / "nan"
    bad.mkdir()
    (bad / "adapter_config.json").write_text((good / "adapter_config.json").read_text())
    save_file(poisoned, str(bad / "adapter_model.safetensors"))
    with pytest.raises(LoraComposeError, match="module 'nan' has NaN or Inf values in tensor"):
        ModuleBank(base.model, {"nan": bad}, base.fingerprint)
    # A module made for the real SmolLM2 does not fit the tiny model: layer and both shapes named.
    from transformers import AutoConfig

    big = AutoConfig.from_pretrained(smollm2_dir)
    wrong = {k: (torch.zeros(4, big.hidden_size) if "lora_A" in k else v) for k, v in weights.items()}
    wrong_dir = tmp_path / "wrong"
    wrong_dir.mkdir()
    (wrong_dir / "adapter_config.json").write_text((good / "adapter_config.json").read_text())
    save_file({k: v.contiguous() for k, v in wrong.items()}, str(wrong_dir / "adapter_model.safetensors"))
    with pytest.raises(LoraComposeError, match=r"module 'wrong' layer model\.layers\.\d\.\S+: the adapter is for "
                                               r"a \d+×576 \(out×in\) layer, the base's is \d+×\d+"):
        ModuleBank(base.model, {"wrong": wrong_dir}, base.fingerprint)


def test_prompt_sets(tmp_path):
    assert len(load_prompts("pplm")) == 15
    txt = tmp_path / "p.txt"
    txt.write_text("First prompt\n\nSecond one\n")
    assert load_prompts(str(txt)) == ["First prompt", "Second one"]
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"text": "no prompt field"}\n')
    with pytest.raises(LoraComposeError, match="must be a JSON object with 'prompt'"):
        load_prompts(str(bad))
    with pytest.raises(LoraComposeError, match="unknown prompt set 'pplm2'.*accepted: pplm, pplm35, neutral"):
        load_prompts("pplm2")


def test_learn_weights_finds_the_module_that_wrote_the_examples(steerer):
    from loracompose.compose.learn import LearnConfig, learn_weights

    long = SamplingConfig(max_new_tokens=24)
    examples = texts(steerer.generate(PPLM_PROMPTS[:12], {"pos": 1.0}, seeds=[4], sampling=long))
    result = learn_weights(steerer.model, steerer.tokenizer, steerer.bank,
                           [p + t for p, t in zip(PPLM_PROMPTS, examples)], LearnConfig(steps=30, l1=0.0))
    assert result["weights"]["pos"] > result["weights"]["neg"] + 0.3
    assert result["loss_end"] < result["loss_start"]
    with pytest.raises(LoraComposeError, match="at least 8 example texts, got 3"):
        learn_weights(steerer.model, steerer.tokenizer, steerer.bank, ["a", "b", "c"])


def test_continuation_keeps_the_space_after_the_prompt(smollm2_dir):
    from transformers import AutoTokenizer

    from loracompose.decoding import _continuation

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    prompt = torch.tensor(tok("The movie", add_special_tokens=False)["input_ids"])
    new = torch.tensor(tok(" was great", add_special_tokens=False)["input_ids"])
    assert _continuation(tok, prompt, new) == " was great"
