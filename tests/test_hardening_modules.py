"""Every corrupt module directory is refused with one message naming it; a server serves the good ones."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file, save_file

from loracompose.compose.bank import LoraPair, ModuleBank, discover_modules
from loracompose.compose.export import write_adapter
from loracompose.errors import LoraComposeError
from loracompose.models import load_base
from loracompose.testing import random_adapter

WEIGHTS, CONFIG, META = "adapter_model.safetensors", "adapter_config.json", "loracompose.json"


def _tensors(d: Path, change) -> None:
    tensors = load_file(str(d / WEIGHTS))
    change(tensors)
    save_file(tensors, str(d / WEIGHTS), metadata={"format": "pt"})


def _first(tensors: dict, side: str) -> str:
    return next(k for k in sorted(tensors) if f"lora_{side}" in k)


def _config(d: Path, **changes) -> None:
    config = json.loads((d / CONFIG).read_text())
    config.update(changes)
    (d / CONFIG).write_text(json.dumps(config))  # json.dumps writes NaN/Infinity as Python's json does


def _meta(d: Path, text: str) -> None:
    (d / META).write_text(text)


def _link(d: Path, name: str, outside: Path) -> None:
    (d / name).unlink()
    os.symlink(outside / name, d / name)


CORRUPTIONS = {  # directory name → (corruption, message fragment)
    "truncated": (lambda d, o: (d / WEIGHTS).write_bytes((d / WEIGHTS).read_bytes()[:300]), "cannot be read"),
    "empty-file": (lambda d, o: (d / WEIGHTS).write_bytes(b""), "cannot be read"),
    "garbage": (lambda d, o: (d / WEIGHTS).write_bytes(os.urandom(4096)), "cannot be read"),
    "huge-header": (lambda d, o: (d / WEIGHTS).write_bytes((2**60).to_bytes(8, "little") + b"{}"), "cannot be read"),
    "no-tensors": (lambda d, o: save_file({}, str(d / WEIGHTS)), "holds no LoRA tensors"),
    "weights-link-outside": (lambda d, o: _link(d, WEIGHTS, o), "is a link to a file outside"),
    "config-link-outside": (lambda d, o: _link(d, CONFIG, o), "is a link to a file outside"),
    "config-not-json": (lambda d, o: (d / CONFIG).write_text("{nope"), "adapter_config.json is not valid JSON"),
    "config-a-list": (lambda d, o: (d / CONFIG).write_text("[1, 2]"), "must hold a JSON object, not a list"),
    "config-not-utf8": (lambda d, o: (d / CONFIG).write_bytes(b'{"r": "\xff"}'), "is not UTF-8 text"),
    "config-nested": (lambda d, o: (d / CONFIG).write_text("[" * 100_000 + "]" * 100_000), "adapter_config.json"),
    "alpha-string": (lambda d, o: _config(d, lora_alpha="16"), "'lora_alpha' must be a finite number"),
    "alpha-nan": (lambda d, o: _config(d, lora_alpha=float("nan")), "'lora_alpha' must be a finite number"),
    "alpha-inf": (lambda d, o: _config(d, lora_alpha=float("inf")), "'lora_alpha' must be a finite number"),
    "alpha-1e308": (lambda d, o: _config(d, lora_alpha=1e308), "is not finite in float32"),
    "alpha-bool": (lambda d, o: _config(d, lora_alpha=True), "'lora_alpha' must be a finite number"),
    # found by the fuzz suite: a whole number beyond float's range raised OverflowError
    "alpha-huge-int": (lambda d, o: _config(d, lora_alpha=10**400), "'lora_alpha' must be a finite number"),
    "alpha-pattern": (lambda d, o: _config(d, alpha_pattern={"q_proj": "x"}), "'alpha_pattern' must map"),
    "rank-zero": (lambda d, o: _config(d, r=0), "'r' must be a whole number >= 1"),
    "rank-float": (lambda d, o: _config(d, r=2.5), "'r' must be a whole number >= 1"),
    "not-lora": (lambda d, o: _config(d, peft_type="PREFIX_TUNING"), "only LORA is supported"),
    "scalar-tensor": (lambda d, o: _tensors(d, lambda t: t.update({_first(t, "A"): torch.tensor(1.0)})),
                      "a LoRA weight is a 2-D floating-point matrix"),
    "rank-0-matrix": (lambda d, o: _tensors(d, lambda t: t.update({_first(t, "A"): torch.zeros(0, 64)})),
                      "a LoRA weight is a 2-D floating-point matrix"),
    "vector-tensor": (lambda d, o: _tensors(d, lambda t: t.update({_first(t, "A"): torch.ones(64)})),
                      "a LoRA weight is a 2-D floating-point matrix"),
    "int-tensor": (lambda d, o: _tensors(d, lambda t: t.update({_first(t, "B"): torch.ones(64, 4, dtype=torch.int32)})),
                   "a LoRA weight is a 2-D floating-point matrix"),
    "inf-tensor": (lambda d, o: _tensors(d, lambda t: t[_first(t, "B")].view(-1).__setitem__(0, float("inf"))),
                   "NaN or Inf values"),
    "overflowing-update": (lambda d, o: _tensors(d, lambda t: t.update({k: v * 1e30 for k, v in t.items()})),
                           "is not finite in float32"),
    "missing-B": (lambda d, o: _tensors(d, lambda t: t.pop(_first(t, "B"))), "lora_A or lora_B missing"),
    "rank-mismatch": (lambda d, o: _tensors(d, lambda t: t.update({_first(t, "A"): torch.ones(3, 64)})),
                      "their ranks must agree"),
    "unknown-layer": (lambda d, o: _tensors(d, lambda t: t.update(
        {k.replace("layers.0", "layers.9"): t.pop(k) for k in [k for k in t if "layers.0." in k]})),
        "which the base does not have"),
    "meta-not-json": (lambda d, o: _meta(d, "nope"), "loracompose.json is not valid JSON"),
    "meta-a-string": (lambda d, o: _meta(d, '"x"'), "must hold a JSON object, not a str"),
    "name-a-number": (lambda d, o: _meta(d, '{"name": 5}'), "its name must be a non-empty string"),
    "name-surrogate": (lambda d, o: _meta(d, '{"name": "\\ud800"}'), "its name is not valid Unicode"),
    "name-huge": (lambda d, o: _meta(d, json.dumps({"name": "n" * 10_000})), "at most 200 characters"),
    "datasets-a-number": (lambda d, o: _meta(d, '{"datasets": 7}'), "'datasets' must be a list"),
    "base-a-string": (lambda d, o: _meta(d, '{"base": "x"}'), "'base' must be an object"),
    "base-malformed": (lambda d, o: _meta(d, '{"base": {"linear_shapes": 5}}'), "malformed base fingerprint"),
    "label-a-list": (lambda d, o: _meta(d, '{"label": [1]}'), "its label must be a non-empty string"),
}


@pytest.fixture(scope="module")
def good(tiny_model_dir, tmp_path_factory) -> Path:
    return random_adapter(tiny_model_dir, tmp_path_factory.mktemp("good") / "good", seed=71)


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    return load_base(str(tiny_model_dir), quantize=None)


@pytest.fixture(scope="module")
def corrupt_dir(good, tmp_path_factory) -> Path:
    root, outside = tmp_path_factory.mktemp("corrupt"), tmp_path_factory.mktemp("outside")
    shutil.copytree(good, outside, dirs_exist_ok=True)
    for name, (corrupt, _) in CORRUPTIONS.items():
        shutil.copytree(good, root / name)
        corrupt(root / name, outside)
    for twin in ("twin-1", "twin-2"):  # two directories claim one name: neither is served
        shutil.copytree(good, root / twin)
        _meta(root / twin, '{"name": "twin"}')
    shutil.copytree(good, root / "fine")
    shutil.copytree(good, root / "odd")  # valid, with odd metadata a listing must still serialise
    _meta(root / "odd", '{"datasets": [NaN, {"name": 5}, ["x"], "ok"], "extra": Infinity}')
    return root


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corrupt_module_is_refused_with_one_message(base, corrupt_dir, name):
    with pytest.raises(LoraComposeError) as error:
        ModuleBank(base.model, [corrupt_dir / name], base.fingerprint)
    message = str(error.value)
    assert CORRUPTIONS[name][1] in message and "\n" not in message and len(message) < 400, message
    assert name in message or "module '" in message


def test_two_directories_claiming_one_name_are_refused(corrupt_dir, tmp_path, good):
    for twin in ("a", "b"):
        shutil.copytree(good, tmp_path / twin)
        _meta(tmp_path / twin, '{"name": "twin"}')
    with pytest.raises(LoraComposeError, match=r"module name 'twin' is claimed by 2 directories \(a, b\)"):
        discover_modules(tmp_path)


def test_a_server_with_bad_modules_serves_the_good_ones(tiny_model_dir, corrupt_dir):
    from loracompose.serve.background import serve_in_background

    with serve_in_background(str(tiny_model_dir), str(corrupt_dir), judges="none") as url:
        models = httpx.get(f"{url}/v1/models")
        assert models.status_code == 200
        assert [m["id"] for m in models.json()["data"]] == [tiny_model_dir.name, "fine", "odd"]
        assert models.json()["data"][2]["datasets"] == ["ok"]
        refused = httpx.get(f"{url}/health").json()["refused_modules"]
        assert set(refused) == set(CORRUPTIONS) | {"twin-1", "twin-2"}
        body = {"model": tiny_model_dir.name, "prompt": "x", "max_tokens": 2, "composition": {"modules": {"fine": 1}}}
        assert httpx.post(f"{url}/v1/completions", json=body).status_code == 200


def test_export_never_writes_a_non_finite_tensor(tmp_path):
    pairs = {"model.layers.0.self_attn.q_proj": LoraPair(torch.full((2, 64), 1e30), torch.ones(64, 2), 1e20)}
    with pytest.raises(LoraComposeError, match="has NaN or Inf values after folding in its scale"):
        write_adapter(pairs, tmp_path / "out", base_model_name="tiny", metadata={})
    assert list(tmp_path.iterdir()) == []  # nothing half-written
