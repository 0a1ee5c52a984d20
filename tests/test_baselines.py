"""The baselines of the side-by-side run: prompting, activation addition and model arithmetic (tiny model)."""

import pytest
import torch

from loracompose import LoraComposeError
from loracompose.baselines import actadd
from loracompose.baselines.arithmetic import combine, end_token_ids, sample_arithmetic
from loracompose.baselines.prompting import instruction_template, instructed
from loracompose.compose.bank import ModuleBank
from loracompose.decoding import SamplingConfig, row_seed
from loracompose.generate import Steerer
from loracompose.models import load_base

SHORT = SamplingConfig(max_new_tokens=8)
PROMPTS = ["The city", "Once upon a time", "The {pizza}"]


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return load_base(str(tiny_model_dir), quantize=None)


@pytest.fixture(scope="module")
def steerer(base):
    return Steerer(base.model, base.tokenizer, ModuleBank(base.model, []), "tiny")


def test_instruction_template_is_the_chat_turn_then_the_prompt(base):
    template = instruction_template(base.tokenizer, "sentiment", "negative")
    rendered = template.format(prompt="The {pizza}")  # the prompt's own braces survive; the template's are escaped
    expected = base.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Continue this text in a clearly negative tone: The {pizza}"}], tokenize=False,
        add_generation_prompt=True) + "The {pizza}"
    assert rendered == expected == instructed(base.tokenizer, "sentiment", "negative", "The {pizza}")


def test_prompting_needs_a_chat_template(base):
    class Plain:
        chat_template = None

    with pytest.raises(LoraComposeError, match="chat template"):
        instruction_template(Plain(), "sentiment", "positive")


def test_arithmetic_combine_on_known_logits():
    plain = torch.tensor([[0.0, 1.0, 2.0, 0.5]])
    instructed_ = torch.tensor([[2.0, 0.0, 1.0, 3.0]])
    lp, li = torch.log_softmax(plain, -1), torch.log_softmax(instructed_, -1)
    # S = 1 is the instructed distribution; S = 2 is 2·li − lp except at the end token (index 3), kept at li
    assert torch.allclose(combine(plain, instructed_, 1.0, [3]), li, atol=1e-6)
    two = combine(plain, instructed_, 2.0, [3])
    assert torch.allclose(two[0, :3], (2 * li - lp)[0, :3], atol=1e-6)
    assert torch.allclose(two[0, 3], li[0, 3])


def test_arithmetic_at_strength_one_draws_what_prompting_draws(base, steerer):
    """S = 1 is prompting: the same seeds must give the same texts (same warpers, same generators)."""
    template = instruction_template(base.tokenizer, "sentiment", "positive")
    prompted = steerer.generate(PROMPTS, {}, "output-sum", [1, 2], 1, SHORT, template=template)
    seeds = [row_seed(r["seed"], r["sample"]) for r in prompted]
    texts = sample_arithmetic(base.model, base.tokenizer, [r["prompt"] for r in prompted],
                              [template.format(prompt=r["prompt"]) for r in prompted], seeds, SHORT, 1.0)
    assert texts == [r["text"] for r in prompted]
    stronger = sample_arithmetic(base.model, base.tokenizer, [r["prompt"] for r in prompted],
                                 [template.format(prompt=r["prompt"]) for r in prompted], seeds, SHORT, 3.0)
    assert stronger != texts  # the amplified instruction changes what is drawn
    assert base.tokenizer.convert_tokens_to_ids("<|im_end|>") in end_token_ids(base.tokenizer)


def test_arithmetic_strength_out_of_range(base):
    with pytest.raises(LoraComposeError, match="1.0 to 4.0"):
        sample_arithmetic(base.model, base.tokenizer, ["a"], ["b"], [0], SHORT, 0.5)


def _layer_input(model, layer, batch):
    """The hidden states entering decoder layer `layer` (= the previous layer's output, as steered)."""
    seen = {}
    handle = actadd.decoder_layers(model)[layer].register_forward_pre_hook(
        lambda module, args, kwargs: seen.__setitem__("h", (args[0] if args else kwargs["hidden_states"]).clone()),
        with_kwargs=True)
    try:
        with torch.no_grad():
            model(**batch)
    finally:
        handle.remove()
    return seen["h"]


def test_activation_addition_adds_the_scaled_vector_at_its_layer(base):
    model, tokenizer = base.model, base.tokenizer
    vector = actadd.steering_vector(model, tokenizer, ["a wonderful day", "so good"], ["an awful day", "so bad"], 0)
    assert torch.isclose(vector.direction.norm(), torch.tensor(1.0), atol=1e-5)
    assert vector.median_norm > 0
    batch = tokenizer(["The city is"], return_tensors="pt")
    plain = _layer_input(model, 1, batch)
    with actadd.added(model, vector, 0.5, sign=-1.0):
        steered = _layer_input(model, 1, batch)
    shift = -0.5 * vector.median_norm * vector.direction  # every position of layer 0's output moves by it
    assert torch.allclose(steered, plain + shift, atol=1e-5)
    assert torch.allclose(_layer_input(model, 1, batch), plain)  # the hook is gone after the context


def test_activation_addition_bad_layer_and_scale(base):
    with pytest.raises(LoraComposeError, match="accepted: 0 to 1"):
        actadd.check_layer(base.model, 7)
    with pytest.raises(LoraComposeError, match="at most 2.0"):
        actadd.check_scale(3.0)
