"""Every bad input gets one clear 4xx; the API key; a full queue (429) and deadlines (408)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

openai = pytest.importorskip("openai")

from serve_helpers import make_modules, post_concurrently  # noqa: E402
from loracompose.serve.background import serve_in_background  # noqa: E402

POS = "positive@tiny"


@pytest.fixture(scope="module")
def modules_dir(tiny_model_dir, tmp_path_factory):
    return make_modules(tiny_model_dir, tmp_path_factory.mktemp("served-modules"))


@pytest.fixture(scope="module")
def url(tiny_model_dir, modules_dir):
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_tokens_cap=64, max_n=4, max_batch_rows=8,
                             max_prompt_tokens=100, max_body_bytes=50_000, judges="none") as base_url:
        yield base_url


def ok(name, **fields):
    return {"model": name, "prompt": "The movie", "max_tokens": 4, **fields}


BAD = [  # (body builder, status, message fragment)
    (lambda n: "{not json", 400, "the request body is not valid JSON"),
    (lambda n: "[1, 2]", 400, "the request body must be a JSON object"),
    (lambda n: {"prompt": "x"}, 400, "field 'model' is required"),
    (lambda n: {"model": n}, 400, "field 'prompt' is required"),
    (lambda n: ok(n, max_tokens="ten"), 400, "max_tokens: Input should be a valid integer (got 'ten')"),
    (lambda n: ok(n, max_tokens=1.5), 400, "max_tokens: Input should be a valid integer"),
    (lambda n: ok(n, prompt=7), 400, "prompt: expected a string or a list of strings"),
    (lambda n: ok(n, prompt=[1, 2]), 400, "prompt: expected a string or a list of strings"),
    (lambda n: ok(n, stop=3), 400, "stop: expected a string or a list of up to 4 strings"),
    (lambda n: ok(n, temperature="hot"), 400, "temperature: Input should be a valid number"),
    (lambda n: ok(n, temperature=3), 400, "temperature: Input should be less than or equal to 2"),
    (lambda n: ok(n, top_p=0), 400, "top_p: Input should be greater than 0"),
    (lambda n: ok(n, stream="yes"), 400, "stream: Input should be a valid boolean"),
    (lambda n: ok(n, max_tokens=65), 400, "max_tokens 65 is out of range; accepted: 1 to 64"),
    (lambda n: ok(n, max_tokens=0), 400, "max_tokens 0 is out of range; accepted: 1 to 64"),
    (lambda n: ok(n, n=5), 400, "n × prompts = 5 choices; at most 4 per request"),
    (lambda n: ok(n, prompt="word " * 150), 400,
     "tokens; with max_tokens 4 at most 100 fit (context 256, prompt cap 100)"),
    (lambda n: ok(n, prompt=""), 400, "the prompt is empty (0 tokens)"),
    (lambda n: ok(n, prompt=[]), 400, "prompt: give a string or a non-empty list of strings"),
    (lambda n: ok("gpt-4"), 404, "unknown model 'gpt-4'; known: "),
    (lambda n: ok(n, composition={"modules": {"happy": 1}}), 404,
     f"unknown module 'happy'; known modules: {POS}, sport@tiny"),
    (lambda n: ok(n, composition={"modules": {"../../etc/passwd": 1}}), 404, "unknown module '../../etc/passwd'"),
    (lambda n: ok(n, composition={"modules": {POS: 2.5}}), 400,
     f"weight 2.5 of '{POS}' is out of range; accepted: -2.0 to 2.0"),
    (lambda n: ok(n, composition={"modules": {POS: -3}}), 400, "weight -3.0 of 'positive@tiny' is out of range"),
    (lambda n: ok(n, composition={"modules": {POS: "1"}}), 400, "composition.modules.positive@tiny: Input should be"),
    (lambda n: ok(n, composition={"modules": {POS: 1}, "method": "sum"}), 400,
     "composition.method: 'sum' is not a composition method; accepted: output-sum, output-mean, logit-sum"),
    (lambda n: ok(n, composition={"modules": {POS: 1}, "method": "ties"}), 400,
     "'ties' is a weight-level merge, which the server does not run per request"),
    (lambda n: ok(n, composition={"modules": {POS: 1, "sport@tiny": -1}, "method": "output-mean"}), 400,
     "output-mean weights sum to 0"),
    (lambda n: ok(n, composition={"modules": {POS: 0}, "method": "logit-sum"}), 400,
     "logit-sum needs at least one member with a non-zero weight"),
    (lambda n: ok(n, composition={"modules": {"base": 1}}), 404, "(and 'base' for logit-sum)"),
    (lambda n: ok(n, composition={"modules": {POS: 1}, "weights": {}}), 400, "unknown field 'composition.weights'"),
    (lambda n: ok(n, composition=[POS]), 400, "composition: Input should be a valid dictionary"),
    (lambda n: ok(POS, composition={"modules": {POS: 1}}), 400, "give either a module as the model or a composition"),
    (lambda n: ok(n, n=4, composition={"modules": {"base": 1, POS: 1, "sport@tiny": 1}, "method": "logit-sum"}), 400,
     "this request needs 12 batch rows (choices × logit-sum members); the server's batch holds 8"),
    (lambda n: ok(n, frobnicate=True), 400, "unknown field 'frobnicate'"),
    (lambda n: ok(n, presence_penalty=0.5), 400, "presence_penalty=0.5 is not supported by this server"),
    (lambda n: ok(n, logprobs=3), 400, "logprobs=3 is not supported by this server"),
    (lambda n: ok(n, stop=["a", "b", "c", "d", "e"]), 400, "stop takes at most 4 non-empty strings"),
    (lambda n: ok(n, prompt="x" * 60_000), 413, "the request body is larger than 50000 bytes"),
]


@pytest.mark.parametrize("index", range(len(BAD)))
def test_bad_completion_requests(url, tiny_model_dir, index):
    build, status, message = BAD[index]
    body = build(tiny_model_dir.name)
    content = body if isinstance(body, str) else json.dumps(body)
    response = httpx.post(f"{url}/v1/completions", content=content, headers={"Content-Type": "application/json"},
                          timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"], error["message"]
    assert error["code"] == status and error["type"]


def test_nan_weights_and_bad_chat_bodies(url, tiny_model_dir):
    name = tiny_model_dir.name
    for body, message in [('{"model": "%s", "prompt": "a \\ud800 b"}' % name, "the prompt is not valid Unicode text"),
                          ('{"prompt": ' + "[" * 10_000 + "]" * 10_000 + "}", "could not be parsed as JSON"),
                          (b'{"model": "x", "prompt": "\xff"}', "could not be parsed as JSON")]:
        response = httpx.post(f"{url}/v1/completions", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and message in response.json()["error"]["message"], response.text
    nan = '{"model": "%s", "prompt": "x", "composition": {"modules": {"%s": NaN}}}' % (name, POS)
    response = httpx.post(f"{url}/v1/completions", content=nan, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "weight nan of 'positive@tiny' is out of range" in response.text
    chats = [
        ({"model": name, "messages": []}, "messages: List should have at least 1 item"),
        ({"model": name, "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role: Input should be"),
        ({"model": name, "messages": [{"role": "user"}]}, "field 'messages.0.content' is required"),
        ({"model": name, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
         'messages.0.content: expected a string or a list of {"type": "text", "text": ...} parts'),
        ({"model": name, "messages": [{"role": "user", "content": "\udfff"}]},
         "the prompt is not valid Unicode text (surrogates not allowed"),
        ({"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
          "max_completion_tokens": 3}, "give max_tokens or max_completion_tokens, not both"),
        ({"model": name, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
         "tools="),
    ]
    for body, message in chats:
        response = httpx.post(f"{url}/v1/chat/completions", content=json.dumps(body),  # escapes the surrogate
                              headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and message in response.json()["error"]["message"], response.text


def test_routes_methods_and_the_openai_client_errors(url, tiny_model_dir):
    assert httpx.get(f"{url}/v1/nothing").status_code == 404
    response = httpx.get(f"{url}/v1/completions")
    assert response.status_code == 405 and "method GET is not allowed" in response.json()["error"]["message"]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="unknown module 'happy'"):
        client.completions.create(model=tiny_model_dir.name, prompt="x", max_tokens=2,
                                  extra_body={"composition": {"modules": {"happy": 1.0}}})
    with pytest.raises(openai.BadRequestError, match="max_tokens 1000 is out of range"):
        client.completions.create(model=tiny_model_dir.name, prompt="x", max_tokens=1000)


def test_api_key(tiny_model_dir, modules_dir):
    with serve_in_background(str(tiny_model_dir), str(modules_dir), api_key="s3cret", judges="none") as url:
        assert httpx.get(f"{url}/health").status_code == 200  # open: health checks carry no key
        assert httpx.get(f"{url}/").status_code == 200  # the static page; it sends the key the user types
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = httpx.get(f"{url}/v1/models", headers=headers)
            assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
            assert "missing or wrong API key" in response.json()["error"]["message"]
        body = {"model": tiny_model_dir.name, "prompt": "x", "max_tokens": 2}
        assert httpx.post(f"{url}/v1/completions", json=body).status_code == 401
        assert httpx.post(f"{url}/v1/judge", json={"text": "x"}).status_code == 401
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert client.completions.create(model=tiny_model_dir.name, prompt="x", max_tokens=2).choices[0].text
    with serve_in_background(str(tiny_model_dir), str(modules_dir), judges="none") as url:
        assert httpx.get(f"{url}/v1/models").status_code == 200  # no key configured: open


def test_full_queue_answers_429_with_retry_after(tiny_model_dir, modules_dir):
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_queue=1, max_batch_rows=1,
                             max_tokens_cap=200, judges="none") as url:
        body = {"model": tiny_model_dir.name, "prompt": "The movie", "max_tokens": 200, "seed": 0}
        responses = post_concurrently(url, [body] * 6)
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 429} and statuses.count(200) >= 2, statuses
        rejected = next(r for r in responses if r.status_code == 429)
        assert int(rejected.headers["Retry-After"]) >= 1
        assert "the server is busy (1 requests queued); retry in" in rejected.json()["error"]["message"]
        assert httpx.get(f"{url}/health").json()["max_queue_seen"] <= 1


def test_requests_past_their_deadline_are_cancelled(tiny_model_dir, modules_dir):
    # The batch window (50 ms) outlasts the deadline (30 ms): every request expires during its decoding.
    with serve_in_background(str(tiny_model_dir), str(modules_dir), batch_window_s=0.05, request_timeout_s=0.03,
                             max_tokens_cap=256, judges="none") as url:
        body = {"model": tiny_model_dir.name, "prompt": "The movie", "max_tokens": 200, "seed": 0}
        response = httpx.post(f"{url}/v1/completions", json=body)
        assert response.status_code == 408
        assert "request cancelled: not finished within its deadline of 0.03 s" in response.json()["error"]["message"]
        with httpx.stream("POST", f"{url}/v1/completions", json={**body, "stream": True}) as stream:
            events = [line for line in stream.iter_lines() if line.startswith("data: ")]
        assert stream.status_code == 200 and events[-1] == "data: [DONE]"
        assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == 408  # an error event, then the end
        health = httpx.get(f"{url}/health").json()
        assert health["timed_out"] == 2 and health["queued"] == 0
        assert httpx.get(f"{url}/health").json()["batches"] == 2


def test_a_client_that_leaves_mid_stream_frees_its_rows(tiny_model_dir, modules_dir):
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_tokens_cap=240, judges="none") as url:
        body = {"model": tiny_model_dir.name, "prompt": "The movie", "max_tokens": 240, "seed": 0, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body) as stream:
            next(stream.iter_lines())  # one event, then hang up
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").json()["client_gone"] < 1:
            assert time.monotonic() < deadline, "the scheduler did not notice the client leaving"
            time.sleep(0.01)


def test_a_server_without_modules_serves_the_base(tiny_model_dir):
    with serve_in_background(str(tiny_model_dir), None, judges="none") as url:
        assert [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]] == [tiny_model_dir.name]
        body = {"model": tiny_model_dir.name, "prompt": "x", "max_tokens": 2}
        assert httpx.post(f"{url}/v1/completions", json=body).status_code == 200
        response = httpx.post(f"{url}/v1/completions", json={**body, "composition": {"modules": {POS: 1}}})
        assert response.status_code == 404 and "known modules: none" in response.json()["error"]["message"]
