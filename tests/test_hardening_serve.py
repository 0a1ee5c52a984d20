"""Hostile input fails only itself: poison requests, poison modules, odd names, hang-ups, huge prompts."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlparse

import httpx
import pytest
import torch

pytest.importorskip("fastapi")

from serve_helpers import make_modules, post_concurrently  # noqa: E402
from loracompose.compose.bank import ModuleBank  # noqa: E402
from loracompose.compose.fused import ComposedModel  # noqa: E402
from loracompose.decoding import Decoder, SamplingConfig, Sequence, sample  # noqa: E402
from loracompose.errors import LoraComposeError  # noqa: E402
from loracompose.models import load_base  # noqa: E402
from loracompose.serve.background import serve_in_background  # noqa: E402
from loracompose.testing import random_adapter  # noqa: E402

POS = "positive@tiny"


POISON = 0.123  # a composition weight the poisoned forward below recognises


def poisoned_forward(monkeypatch, index: int = 1):
    """Decoder forwards whose logits are NaN on every row where module `index` has weight POISON:
    what a module that overflows does to the rows that use it."""
    forward = Decoder._forward

    def _forward(self, **inputs):
        out = forward(self, **inputs)
        if self.row_weights is not None:
            rows = (self.row_weights[:, index] - POISON).abs() < 1e-6
            out.logits[rows] = float("nan")
        return out

    monkeypatch.setattr(Decoder, "_forward", _forward)


@pytest.fixture(scope="module")
def modules_dir(tiny_model_dir, tmp_path_factory):
    return make_modules(tiny_model_dir, tmp_path_factory.mktemp("hardened-modules"))


@pytest.fixture(scope="module")
def url(tiny_model_dir, modules_dir):
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_tokens_cap=64, max_n=4, max_batch_rows=16,
                             max_prompt_tokens=100, batch_window_s=0.3, judges="none") as base_url:
        yield base_url


# -- item 1: a poison request fails only itself ------------------------------------------------------

def test_a_nan_sequence_fails_alone_in_the_decoder(tiny_model_dir, tmp_path, monkeypatch):
    base = load_base(str(tiny_model_dir), quantize=None)
    paths = {"a1": random_adapter(tiny_model_dir, tmp_path / "a1", seed=51),
             "b2": random_adapter(tiny_model_dir, tmp_path / "b2", seed=52, rank=2)}
    composed = ComposedModel(base.model, ModuleBank(base.model, paths, base.fingerprint))
    ids = base.tokenizer("The movie")["input_ids"]

    def sequences():
        return [Sequence(ids, 1, SamplingConfig(max_new_tokens=5)),
                Sequence(ids, 2, SamplingConfig(max_new_tokens=5), rows=torch.tensor([[1.0, POISON]])),
                Sequence(ids, 3, SamplingConfig(max_new_tokens=5, temperature=1e-40)),  # greedy, not a crash
                Sequence(ids, 4, SamplingConfig(max_new_tokens=5), rows=torch.tensor([[1.0, -0.5]]))]

    poisoned_forward(monkeypatch)
    together = sequences()
    decoder = Decoder(composed, base.tokenizer, together, last_logits_only=True)
    with composed.composition(decoder.row_weights):
        assert decoder.step() == [0, 1, 2, 3]  # the failed sequence is reported as changed, once
        while not decoder.done:
            assert 1 not in decoder.step()
    assert together[1].finish_reason == "error" and together[1].tokens == []
    for index in (0, 2, 3):
        solo = sequences()[index]
        Decoder(composed, base.tokenizer, [solo], last_logits_only=True).run()
        assert together[index].tokens == solo.tokens and len(solo.tokens) == 5
    greedy = Sequence(ids, 9, SamplingConfig(max_new_tokens=5, top_k=1))
    Decoder(composed, base.tokenizer, [greedy], last_logits_only=True).run()
    assert together[2].tokens == greedy.tokens  # a temperature that would overflow float32 is greedy
    with pytest.raises(LoraComposeError, match="NaN or Inf scores for 1 of 1 sequences"):
        sample(composed, base.tokenizer, ["The movie"], [1], SamplingConfig(max_new_tokens=3),
               weights=torch.tensor([[0.0, POISON]]))
    composed.detach()


def test_poison_requests_fail_only_themselves(url, tiny_model_dir, monkeypatch):
    name = tiny_model_dir.name
    innocent = {"model": name, "prompt": "The movie", "max_tokens": 6, "seed": 1}
    poison_temperature = {**innocent, "temperature": 1e-40}
    poison_module = {**innocent, "composition": {"modules": {"sport@tiny": POISON}}}
    poisoned_forward(monkeypatch)  # the server runs in this process: its decoder is poisoned too
    responses = post_concurrently(url, [innocent] * 5 + [poison_temperature, poison_module] + [innocent] * 5)
    statuses = [r.status_code for r in responses]
    assert statuses[:5] == [200] * 5 and statuses[7:] == [200] * 5, statuses
    assert statuses[5] == 200  # tiny temperature = greedy
    assert statuses[6] == 422, responses[6].text
    assert "the model's scores became NaN or Inf" in responses[6].json()["error"]["message"]
    texts = {r.json()["choices"][0]["text"] for r in responses if r.status_code == 200 and r is not responses[5]}
    assert len(texts) == 1  # the same seed gives the same text whatever shared the batch
    health = httpx.get(f"{url}/health").json()
    assert health["non_finite"] >= 1 and health["status"] == "ok"


# -- item 2: names the server cannot encode, and unbounded echoes -------------------------------------

def test_lone_surrogates_and_long_names_get_a_4xx(url, tiny_model_dir):
    name = tiny_model_dir.name
    bodies = ['{"model": "\\ud800", "prompt": "x"}',
              '{"model": "%s", "prompt": "x", "composition": {"modules": {"\\udfff": 1}}}' % name,
              '{"model": "%s", "prompt": "x", "composition": {"modules": {"%s": "\\ud800"}}}' % (name, POS),
              '{"model": "%s", "prompt": "x", "\\ud800": 1}' % name,
              '{"model": "%s", "prompt": "x", "composition": {"method": "\\ud800"}}' % name,  # found by the fuzz suite
              json.dumps({"model": "m" * 100_000, "prompt": "x"}),
              json.dumps({"model": name, "prompt": "x", "k" * 100_000: 1}),
              json.dumps({"model": name, "prompt": "x", "logit_bias": {str(i): 1 for i in range(5000)}})]
    with httpx.Client(timeout=30) as client:  # one keep-alive connection throughout
        for body in bodies:
            response = client.post(f"{url}/v1/completions", content=body,
                                   headers={"Content-Type": "application/json"})
            assert response.status_code in (400, 404), response.text
            error = response.json()["error"]
            assert len(error["message"]) < 600 and (error["param"] is None or len(error["param"]) <= 200)
        response = client.post(f"{url}/v1/completions", content=bodies[0], headers={"Content-Type": "application/json"})
        assert response.json()["error"]["message"].startswith("unknown model '\\ud800'")
        assert client.get(f"{url}/health").status_code == 200


# -- item 3: a non-streamed client that hangs up frees its rows ---------------------------------------

def test_a_non_streamed_client_that_hangs_up_is_noticed(tiny_model_dir, modules_dir):
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_tokens_cap=240, judges="none") as url:
        where = urlparse(url)
        body = json.dumps({"model": tiny_model_dir.name, "prompt": "The movie", "max_tokens": 240, "seed": 0,
                           "composition": {"modules": {POS: 1.0}}}).encode()
        with socket.create_connection((where.hostname, where.port)) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            deadline = time.monotonic() + 10
            while httpx.get(f"{url}/health").json()["batches"] < 1:  # decoding has started
                assert time.monotonic() < deadline
                time.sleep(0.01)
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").json()["client_gone"] < 1:
            assert time.monotonic() < deadline, "the scheduler did not notice the client leaving"
            time.sleep(0.02)
        health = httpx.get(f"{url}/health").json()
        assert health["client_gone"] == 1 and health["queued"] == 0


# -- item 4: an oversized prompt is refused before it is tokenised ------------------------------------

def test_oversized_prompts_are_refused_by_length_before_tokenising(url, tiny_model_dir):
    name = tiny_model_dir.name
    for body, param in [({"model": name, "prompt": "word " * 190_000, "max_tokens": 4}, "prompt"),
                        ({"model": name, "messages": [{"role": "user", "content": "word " * 190_000}]}, "messages")]:
        route = "completions" if "prompt" in body else "chat/completions"
        started = time.monotonic()
        response = httpx.post(f"{url}/v1/{route}", json=body, timeout=30)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param and f"the {param} is 950000 characters; at most" in error["message"]
        assert time.monotonic() - started < 5
    short = httpx.post(f"{url}/v1/completions", json={"model": name, "prompt": "word " * 150, "max_tokens": 4})
    assert short.status_code == 400 and "tokens; with max_tokens 4 at most" in short.json()["error"]["message"]


# -- item 9: without an API key, only loopback Host names are answered (DNS rebinding) ----------------

def test_host_header_check_without_an_api_key(url, tiny_model_dir, modules_dir):
    for host in ("localhost", "localhost:8000", "127.0.0.1:1", "[::1]:8000", "127.3.4.5"):
        assert httpx.get(f"{url}/v1/models", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.evil.example", "[::2]"):
        response = httpx.get(f"{url}/v1/models", headers={"Host": host})
        assert response.status_code == 403, host
        assert "is not served: without an API key this server answers only" in response.json()["error"]["message"]
    with serve_in_background(str(tiny_model_dir), str(modules_dir), judges="none",
                             allowed_hosts=("box.lan",)) as other:
        assert httpx.get(f"{other}/health", headers={"Host": "box.lan:8000"}).status_code == 200
    with serve_in_background(str(tiny_model_dir), str(modules_dir), judges="none", api_key="k") as keyed:
        response = httpx.get(f"{keyed}/v1/models", headers={"Host": "evil.example", "Authorization": "Bearer k"})
        assert response.status_code == 200  # with a key, the key is the check
