"""Property-based fuzzing (hypothesis) of what users and clients hand the library: API bodies, module
directories and experiment specs. Every input is either accepted or refused with one clear message —
never a 5xx, a traceback or a crash — and the server still answers correctly afterwards.

Bounded for CI: a fixed number of examples each (about a minute in all on two cores), derandomised
so a run is reproducible; `LORACOMPOSE_FUZZ_EXAMPLES` scales the counts up for a longer local run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("fastapi")
yaml = pytest.importorskip("yaml")

import httpx  # noqa: E402
import torch  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from serve_helpers import make_modules  # noqa: E402
from loracompose.compose.bank import ModuleBank  # noqa: E402
from loracompose.errors import LoraComposeError  # noqa: E402
from loracompose.experiments.spec import ExperimentSpec, load_spec  # noqa: E402
from loracompose.models import load_base  # noqa: E402
from loracompose.testing import random_adapter  # noqa: E402

SCALE = float(os.environ.get("LORACOMPOSE_FUZZ_EXAMPLES", "1"))
COUNTS: dict[str, Counter] = {"api": Counter(), "modules": Counter(), "specs": Counter()}


def fuzz(examples: int):
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message and len(message) < 2100, message


# -- values: JSON of every kind, strings with lone surrogates, huge and non-finite numbers -------------

surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3)
strings = st.one_of(st.text(max_size=20), surrogates, st.sampled_from(["", "base", "../../etc/passwd", "x" * 3000]))
numbers = st.one_of(st.integers(), st.integers(min_value=-(10**400), max_value=10**400),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, -0.0, 1e-40, 1e-320, 1e308, 2, 2.0000001, -1, 1.5]))
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(strings, inner, max_size=4)), max_leaves=8)

# -- API bodies ----------------------------------------------------------------------------------------

MODEL = "tiny-llama"  # replaced by the served model's name
FIELDS = ["model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "seed", "stop", "stream",
          "stream_options", "user", "composition", "presence_penalty", "logprobs", "logit_bias", "echo",
          "best_of", "suffix", "messages", "max_completion_tokens", "response_format", "tools", "steer"]


def composition_values():
    names = st.one_of(st.sampled_from(["positive@tiny", "sport@tiny", "base"]), strings)
    return st.one_of(values, st.fixed_dictionaries(
        {"modules": st.one_of(values, st.dictionaries(names, numbers, max_size=3))},
        optional={"method": st.one_of(st.sampled_from(["output-sum", "output-mean", "logit-sum", "ties"]), strings)}))


def bodies():
    field_values = {"model": st.one_of(st.just(MODEL), st.just("positive@tiny"), strings, values),
                    "prompt": st.one_of(st.text(max_size=40), surrogates, st.lists(st.text(max_size=10), max_size=3),
                                        values),
                    "max_tokens": st.one_of(st.integers(min_value=-2, max_value=6), numbers),
                    "composition": composition_values(),
                    "steer": st.one_of(values, st.fixed_dictionaries(
                        {"targets": st.one_of(values, st.dictionaries(
                            st.one_of(st.sampled_from(["sentiment", "topic"]), strings),
                            st.one_of(st.sampled_from(["positive", "sport", "negative"]), strings), max_size=2))},
                        optional={"strength": st.one_of(numbers, st.dictionaries(strings, numbers, max_size=2)),
                                  "strategy": st.one_of(st.sampled_from(["contrast", "expert"]), strings)})),
                    "messages": st.one_of(values, st.lists(st.fixed_dictionaries(
                        {"role": st.sampled_from(["user", "system", "assistant", "wizard"]),
                         "content": st.one_of(st.text(max_size=20), surrogates, values)}), max_size=2))}
    chosen = st.dictionaries(st.sampled_from(FIELDS), st.just(None), max_size=7)

    @st.composite
    def body(draw):
        result = {"model": MODEL, "prompt": "The movie", "max_tokens": 2}
        for name in draw(chosen):
            result[name] = draw(field_values.get(name, values))
        if draw(st.booleans()):
            result[draw(strings)] = draw(values)
        return result

    return body()


def raw(body) -> bytes:
    return json.dumps(body).encode()  # ensure_ascii: a lone surrogate travels as \ud800


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    from loracompose.serve.background import serve_in_background

    modules = make_modules(tiny_model_dir, tmp_path_factory.mktemp("fuzz-modules"))
    with serve_in_background(str(tiny_model_dir), str(modules), max_tokens_cap=4, default_max_tokens=2, max_n=3,
                             max_batch_rows=12, max_prompt_tokens=64, max_body_bytes=20_000,
                             judges="none") as url:
        with httpx.Client(base_url=url, timeout=60) as client:  # one keep-alive connection for every body
            yield client, tiny_model_dir.name
            reference = client.post("/v1/completions", json={"model": tiny_model_dir.name, "prompt": "The movie",
                                                             "max_tokens": 3, "seed": 5})
            assert reference.status_code == 200 and reference.json()["usage"]["completion_tokens"] >= 1


def check_response(response: httpx.Response, stream: bool) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        one_line(error["message"])
        assert error["code"] == response.status_code
    elif not stream:
        assert response.json()["choices"]
    else:
        assert response.text.rstrip().endswith("data: [DONE]")


@fuzz(300)
@given(body=bodies(), route=st.sampled_from(["/v1/completions", "/v1/chat/completions"]))
def test_fuzz_api_bodies(served, body, route):
    client, name = served
    body = {k: (name if v == MODEL else v) for k, v in body.items()}
    response = client.post(route, content=raw(body), headers={"Content-Type": "application/json"})
    check_response(response, body.get("stream") is True)
    COUNTS["api"]["tried"] += 1
    COUNTS["api"]["accepted" if response.status_code == 200 else "refused"] += 1


@fuzz(100)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)),
       route=st.sampled_from(["/v1/completions", "/v1/chat/completions", "/v1/judge", "/v1/models", "/health"]))
def test_fuzz_raw_bytes(served, data, route):
    client, _ = served
    response = client.post(route, content=data, headers={"Content-Type": "application/json"})
    assert response.status_code < 500, response.text
    COUNTS["api"]["tried"] += 1
    COUNTS["api"]["refused" if response.status_code >= 400 else "accepted"] += 1


def test_the_server_answers_correctly_after_the_fuzzing(served):
    client, name = served
    body = {"model": name, "prompt": "The movie", "max_tokens": 3, "seed": 5, "composition":
            {"modules": {"positive@tiny": 1.0, "sport@tiny": -0.5}}}
    first, second = client.post("/v1/completions", json=body), client.post("/v1/completions", json=body)
    assert first.status_code == 200 and first.json()["choices"] == second.json()["choices"]
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["queued"] == 0


# -- module directories ----------------------------------------------------------------------------------

CONFIG_KEYS = ["r", "lora_alpha", "peft_type", "alpha_pattern", "rank_pattern", "use_rslora", "use_dora",
               "modules_to_save", "target_modules"]
META_KEYS = ["name", "label", "attribute", "datasets", "base", "format"]


@pytest.fixture(scope="module")
def good_module(tiny_model_dir, tmp_path_factory):
    return random_adapter(tiny_model_dir, tmp_path_factory.mktemp("fuzz-good") / "good", seed=81)


@pytest.fixture(scope="module")
def tiny_base(tiny_model_dir):
    return load_base(str(tiny_model_dir), quantize=None)


def tensor_changes():
    shapes = st.lists(st.integers(min_value=0, max_value=70), min_size=0, max_size=3).map(tuple)
    fills = st.sampled_from([0.0, 1.0, 1e30, -1e38, float("nan"), float("inf"), 1e-45])
    dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.float64])
    return st.lists(st.tuples(st.integers(min_value=0, max_value=20), shapes, fills, dtypes), max_size=3)


@fuzz(250)
@given(config=st.dictionaries(st.sampled_from(CONFIG_KEYS), values, max_size=3),
       meta=st.one_of(st.none(), st.dictionaries(st.sampled_from(META_KEYS), values, max_size=3),
                      st.sampled_from(['"x"', "[]", "{", "", "\udcff"])),
       weights=st.one_of(st.none(), st.binary(max_size=64), st.tuples(st.integers(min_value=0, max_value=4000),
                                                                        st.binary(min_size=1, max_size=8))),
       tensors=tensor_changes())
def test_fuzz_module_directories(good_module, tiny_base, tmp_path_factory, config, meta, weights, tensors):
    from safetensors.torch import load_file

    directory = tmp_path_factory.mktemp("fuzz-module") / "m"
    shutil.copytree(good_module, directory)
    adapter = json.loads((directory / "adapter_config.json").read_text())
    adapter.update(config)
    (directory / "adapter_config.json").write_text(json.dumps(adapter))
    if isinstance(meta, dict):
        (directory / "loracompose.json").write_text(json.dumps(meta))
    elif isinstance(meta, str):
        (directory / "loracompose.json").write_bytes(meta.encode("utf-8", "surrogatepass"))
    path = directory / "adapter_model.safetensors"
    if tensors:
        loaded = load_file(str(path))
        keys = sorted(loaded)
        for index, shape, fill, dtype in tensors:
            loaded[keys[index % len(keys)]] = torch.full(shape, fill).to(dtype)
        save_file(loaded, str(path))
    if isinstance(weights, bytes):
        path.write_bytes(weights)
    elif isinstance(weights, tuple):  # overwrite some bytes in place
        data = bytearray(path.read_bytes())
        at, patch = weights
        data[at % len(data): at % len(data) + len(patch)] = patch
        path.write_bytes(bytes(data))
    COUNTS["modules"]["tried"] += 1
    try:
        bank = ModuleBank(tiny_base.model, [directory], tiny_base.fingerprint)
    except LoraComposeError as exc:
        one_line(str(exc))
        COUNTS["modules"]["refused"] += 1
        return
    COUNTS["modules"]["accepted"] += 1
    (module,) = bank.modules
    json.dumps({"name": module.name, "rank": module.info.rank, "alpha": module.info.alpha}, allow_nan=False)
    for pair in module.layers.values():  # what was accepted is usable: finite scales and updates
        assert math.isfinite(pair.scale) and torch.isfinite(pair.delta()).all()


# -- experiment specs ----------------------------------------------------------------------------------

SPEC_KEYS = ["name", "workdir", "models", "tasks", "prompts", "heldout", "max_prompts", "seeds", "samples", "train",
             "generate", "compose", "learn_weights", "evaluate", "description"]
SECTION_KEYS = {"train": ["rank", "alpha", "learning_rate", "steps", "target_modules", "quantize", "mixing",
                          "long_texts", "dropout", "seed"],
                "generate": ["max_new_tokens", "top_k", "top_p", "temperature", "batch_size", "template", "quantize"],
                "compose": ["density", "merge_seed", "svd_rank"], "learn_weights": ["steps", "l1", "examples"],
                "evaluate": ["reference", "resamples", "judge_input", "batch_size", "judges"],
                "heldout": ["prompts", "words"]}
yaml_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
                                     st.floats(), st.text(max_size=15)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=6)


@st.composite
def spec_texts(draw):
    spec = {"name": "fuzz", "models": ["smollm2-135m"], "tasks": [{"set": "sentiment", "targets": ["positive"]}]}
    for key in draw(st.lists(st.sampled_from(SPEC_KEYS), max_size=4, unique=True)):
        if key in SECTION_KEYS and draw(st.booleans()):
            spec[key] = draw(st.dictionaries(st.sampled_from(SECTION_KEYS[key]), yaml_values, max_size=3))
        else:
            spec[key] = draw(yaml_values)
    text = yaml.safe_dump(spec, allow_unicode=True)
    mutation = draw(st.sampled_from(["none", "none", "insert", "cut", "alias", "bytes"]))
    if mutation == "insert":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(st.sampled_from(["&a ", "*a", "[", "{", ": ", "\t", "!!python/name:os.system ",
                                                 "- ", "'", "\x00", "? "])) + text[at:]
    elif mutation == "cut":
        text = text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif mutation == "alias":
        text = "x: &x [1, 2]\n" + text.replace("positive", "*x", 1)
    return text.encode("utf-8", "surrogatepass") if mutation != "bytes" else draw(st.binary(max_size=200))


@fuzz(400)
@given(text=spec_texts())
def test_fuzz_experiment_specs(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz-spec") / "spec.yaml"
    path.write_bytes(text)
    COUNTS["specs"]["tried"] += 1
    try:
        spec = load_spec(path)
    except LoraComposeError as exc:
        one_line(str(exc))
        COUNTS["specs"]["refused"] += 1
        return
    assert isinstance(spec, ExperimentSpec) and spec.name == "fuzz"
    assert Path(spec.workdir, spec.name).name == "fuzz"  # the name never leaves the workdir
    COUNTS["specs"]["accepted"] += 1


def test_fuzz_counts(capsys):
    """Reports the counts (run with -s to see them); each family was actually exercised."""
    with capsys.disabled():
        for family, counts in COUNTS.items():
            print(f"\nfuzz {family}: {dict(counts)}")
    assert all(counts["tried"] for counts in COUNTS.values() if counts)
