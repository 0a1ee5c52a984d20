"""The HTTP API against a real uvicorn server on loopback (tiny model), with the official openai client."""

from __future__ import annotations

import threading

import httpx
import pytest

openai = pytest.importorskip("openai")

from serve_helpers import make_modules  # noqa: E402
from loracompose.compose.bank import ModuleBank  # noqa: E402
from loracompose.decoding import SamplingConfig  # noqa: E402
from loracompose.generate import Steerer  # noqa: E402
from loracompose.models import load_base  # noqa: E402
from loracompose.serve.background import serve_in_background  # noqa: E402

POS, SPORT = "positive@tiny", "sport@tiny"


@pytest.fixture(scope="module")
def modules_dir(tiny_model_dir, tmp_path_factory):
    return make_modules(tiny_model_dir, tmp_path_factory.mktemp("served-modules"))


@pytest.fixture(scope="module")
def url(tiny_model_dir, modules_dir):
    # A batch window long enough that requests sent together are batched together.
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_batch_rows=32, batch_window_s=0.1,
                             max_tokens_cap=64, judges="none") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0)


@pytest.fixture(scope="module")
def name(tiny_model_dir):
    return tiny_model_dir.name


@pytest.fixture(scope="module")
def reference(tiny_model_dir, modules_dir):
    """`loracompose generate`'s Steerer on a separately loaded copy: what the server must reproduce."""
    base = load_base(str(tiny_model_dir), quantize=None)
    bank = ModuleBank(base.model, {POS: modules_dir / POS, SPORT: modules_dir / SPORT}, base.fingerprint)
    steerer = Steerer(base.model, base.tokenizer, bank, "tiny")

    def generate(prompt: str, composition: dict, method: str, seed: int, max_tokens: int) -> str:
        (record,) = steerer.generate([prompt], composition, method, seeds=[seed],
                                     sampling=SamplingConfig(max_new_tokens=max_tokens))
        return record["text"]

    return generate


def post(url, body, **kwargs):
    return httpx.post(f"{url}/v1/completions", json=body, timeout=60, **kwargs)


def test_models_lists_base_and_modules_with_attributes(client, name):
    models = {m.id: m for m in client.models.list().data}
    assert set(models) == {name, POS, SPORT}
    assert models[name].model_extra["kind"] == "base"
    assert models[name].model_extra["composition"]["weight_range"] == [-2.0, 2.0]
    assert models[POS].model_extra["attribute"] == "sentiment" and models[POS].model_extra["label"] == "positive"
    assert models[SPORT].model_extra["attribute"] == "topic" and models[SPORT].model_extra["datasets"] == ["tiny"]


@pytest.mark.parametrize("composition, method", [
    ({}, "output-sum"),
    ({POS: 1.0, SPORT: 0.5}, "output-sum"),
    ({POS: 1.0, SPORT: 1.0}, "output-mean"),
    ({"base": 1.0, POS: 1.5, SPORT: -0.5}, "logit-sum"),
])
def test_completion_equals_loracompose_generate(client, name, reference, composition, method):
    """The server samples exactly what `loracompose generate` samples for the same prompt, seed and composition."""
    extra = {"composition": {"modules": composition, "method": method}} if composition else {}
    response = client.completions.create(model=name, prompt="The movie", max_tokens=10, seed=42, extra_body=extra)
    (choice,) = response.choices
    assert choice.text == reference("The movie", composition, method, 42, 10)
    assert choice.finish_reason in ("length", "stop")
    assert response.usage.prompt_tokens == 2 and 1 <= response.usage.completion_tokens <= 10
    assert response.model_extra["seed"] == 42


def test_a_module_as_the_model_means_that_module_alone(client, name):
    as_model = client.completions.create(model=POS, prompt="The lake", max_tokens=8, seed=5)
    as_composition = client.completions.create(model=name, prompt="The lake", max_tokens=8, seed=5,
                                               extra_body={"composition": {"modules": {POS: 1.0}}})
    base = client.completions.create(model=name, prompt="The lake", max_tokens=8, seed=5)
    assert as_model.choices[0].text == as_composition.choices[0].text != base.choices[0].text


def test_seeds_choices_and_prompt_lists(client, name):
    one = client.completions.create(model=name, prompt="The city", max_tokens=8, seed=1, n=3)
    assert [c.index for c in one.choices] == [0, 1, 2]
    assert len({c.text for c in one.choices}) > 1  # each choice has its own generator
    again = client.completions.create(model=name, prompt=["The city", "The road"], max_tokens=8, seed=1, n=3)
    assert [c.text for c in again.choices[:3]] == [c.text for c in one.choices]
    greedy = [client.completions.create(model=name, prompt="The city", max_tokens=8, temperature=0, seed=s)
              for s in (1, 2)]
    assert greedy[0].choices[0].text == greedy[1].choices[0].text  # temperature 0: greedy, seed irrelevant


def test_chat_with_a_composition(client, name):
    response = client.chat.completions.create(
        model=name, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        max_tokens=12, seed=3, extra_body={"composition": {"modules": {POS: 1.0, SPORT: 0.8}}})
    (choice,) = response.choices
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert response.object == "chat.completion" and response.usage.prompt_tokens > 10
    assert response.model_extra["composition"] == {"modules": {POS: 1.0, SPORT: 0.8}, "method": "output-sum"}


def test_streaming_gives_the_same_text_in_pieces(client, name):
    composition = {"composition": {"modules": {POS: 1.0}, "method": "output-sum"}}
    whole = client.completions.create(model=name, prompt="Once upon a time", max_tokens=16, seed=9,
                                      extra_body=composition)
    chunks = list(client.completions.create(model=name, prompt="Once upon a time", max_tokens=16, seed=9,
                                            stream=True, extra_body=composition))
    assert len(chunks) > 3
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason

    messages = [{"role": "user", "content": "Tell me about sport"}]
    chat_whole = client.chat.completions.create(model=name, messages=messages, max_tokens=12, seed=4)
    stream = client.chat.completions.create(model=name, messages=messages, max_tokens=12, seed=4, stream=True,
                                            stream_options={"include_usage": True})
    chat_chunks = list(stream)
    assert chat_chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chat_chunks if c.choices)
    assert text == chat_whole.choices[0].message.content
    assert chat_chunks[-1].usage.completion_tokens == chat_whole.usage.completion_tokens


def test_stop_strings_cut_the_text(client, name):
    full = client.completions.create(model=name, prompt="The pizza", max_tokens=24, seed=11).choices[0].text
    stop = full.strip().split()[2]  # a word in the middle of the text
    cut = client.completions.create(model=name, prompt="The pizza", max_tokens=24, seed=11, stop=[stop])
    assert cut.choices[0].text == full[: full.index(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model=name, prompt="The pizza", max_tokens=24, seed=11, stop=stop,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed) == cut.choices[0].text


def test_mixed_compositions_share_batches_and_match_solo_runs(url, name):
    """Requests with different compositions (and methods, lengths, settings) sent together are decoded in
    shared batches, and each gets exactly the tokens it gets when served alone."""
    bodies = [
        {"prompt": "The movie", "seed": 1},
        {"prompt": "The horse", "seed": 2, "composition": {"modules": {POS: 1.0}}},
        {"prompt": "The president of the country", "seed": 3, "composition": {"modules": {SPORT: 1.5, POS: -0.5}}},
        {"prompt": "The lake", "seed": 4, "composition": {"modules": {POS: 1.0, SPORT: 1.0}, "method": "output-mean"}},
        {"prompt": "The book", "seed": 5, "composition": {"modules": {"base": 1.0, POS: 1.0}, "method": "logit-sum"}},
        {"prompt": "The chicken", "seed": 6, "composition": {"modules": {POS: 2.0, SPORT: -1.0},
                                                             "method": "logit-sum"}},
        {"prompt": "The road", "seed": 7, "temperature": 0.7, "top_p": 0.8, "max_tokens": 5},
        {"prompt": "The painting", "seed": 8, "n": 2, "composition": {"modules": {SPORT: 0.7}}},
    ]
    bodies = [{"model": name, "max_tokens": 12, **b} for b in bodies]
    alone = [post(url, b).json() for b in bodies]
    before = httpx.get(f"{url}/health").json()
    together: list = [None] * len(bodies)
    start = threading.Barrier(len(bodies))

    def send(i):
        start.wait()
        together[i] = post(url, bodies[i]).json()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = httpx.get(f"{url}/health").json()
    assert after["batches"] - before["batches"] < len(bodies)  # they shared batches ...
    assert after["mixed_batches"] > before["mixed_batches"]  # ... with different compositions in one
    assert after["max_batch_jobs"] >= 3
    for solo, mixed in zip(alone, together):
        assert [c["text"] for c in mixed["choices"]] == [c["text"] for c in solo["choices"]]
        assert mixed["usage"] == solo["usage"]


def test_steer_equals_the_composition_it_resolves_to(client, name, url):
    """`steer` names attribute values; the server resolves them as `generate --steer` does."""
    models = {m.id: m for m in client.models.list().data}
    assert models[name].model_extra["steer"]["attributes"] == {"sentiment": ["positive"], "topic": ["sport"]}
    steered = client.completions.create(model=name, prompt="The movie", max_tokens=10, seed=42, extra_body={
        "steer": {"targets": {"sentiment": "positive", "topic": "sport"}, "strength": {"sentiment": 1.0, "topic": 0.5}}})
    composed = client.completions.create(model=name, prompt="The movie", max_tokens=10, seed=42, extra_body={
        "composition": {"modules": {POS: 1.0, SPORT: 0.5}}})
    assert steered.choices[0].text == composed.choices[0].text
    assert steered.model_extra.get("composition", {}).get("modules") in (None, {POS: 1.0, SPORT: 0.5})


@pytest.mark.parametrize("steer, status, message", [
    ({"targets": {"sentiment": "negative"}}, 400, "no module steers sentiment=negative; values of 'sentiment' with "
                                                 "modules: positive"),
    ({"targets": {"mood": "calm"}}, 400, "no module steers attribute 'mood'"),
    ({"targets": {"sentiment": "positive"}, "strength": 9}, 400, "out of range"),
    ({"targets": {"sentiment": "positive"}, "strategy": "magic"}, None, "unknown strategy 'magic'"),
])
def test_bad_steer_is_a_4xx_naming_what_exists(url, name, steer, status, message):
    response = post(url, {"model": name, "prompt": "The movie", "max_tokens": 4, "steer": steer})
    assert 400 <= response.status_code < 500 and (status is None or response.status_code == status)
    assert message in response.json()["error"]["message"]


def test_steer_and_composition_together_are_refused(url, name):
    response = post(url, {"model": name, "prompt": "The movie", "max_tokens": 4,
                          "steer": {"targets": {"sentiment": "positive"}}, "composition": {"modules": {POS: 1.0}}})
    assert 400 <= response.status_code < 500 and "not both" in response.json()["error"]["message"]
