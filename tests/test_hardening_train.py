"""A crash loses nothing: a kill or a full disk mid-checkpoint, a full disk at the final write, a diverged run."""

from __future__ import annotations

import errno
import json
from functools import partial

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from train_helpers import tiny_train_config
import loracompose.train as train
from loracompose.errors import LoraComposeError
from loracompose.train import train_module


tiny_config = partial(tiny_train_config, eval_every=0)  # no evaluation: these runs are about checkpoints


def same_adapter(a, b) -> None:
    a, b = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:  # optimiser, scheduler, RNG and data order restored: the same arithmetic
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def straight(tiny_model_dir, tmp_path_factory):
    return train_module(tiny_config(tiny_model_dir), tmp_path_factory.mktemp("straight") / "m", progress=False)


def test_a_kill_mid_checkpoint_resumes_from_the_last_complete_one(tiny_model_dir, tmp_path, monkeypatch, straight):
    save_rng = Trainer._save_rng_state

    def killed(self, output_dir):  # the weights and optimizer of checkpoint-8 are written, then the process dies
        if output_dir.endswith("checkpoint-8"):
            raise KeyboardInterrupt("killed")
        save_rng(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", killed)
    out = tmp_path / "m"
    with pytest.raises(KeyboardInterrupt):
        train_module(tiny_config(tiny_model_dir), out, progress=False)
    monkeypatch.undo()
    work = tmp_path / "m.training"
    assert not out.exists() and (work / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (work / "checkpoint-8").exists()  # written aside, never renamed into place
    (work / "checkpoint-12").mkdir()  # what an older, non-atomic writer left: weights without a state file
    (work / "checkpoint-12" / "adapter_model.safetensors").write_bytes(b"partial")
    resumed = train_module(tiny_config(tiny_model_dir), out, resume=True, progress=False)
    assert resumed.metadata["training"]["resumed_from"] == "checkpoint-4"
    same_adapter(straight.path, resumed.path)


def test_a_full_disk_gives_one_message_and_stays_resumable(tiny_model_dir, tmp_path, monkeypatch, straight):
    save = torch.save

    def full(obj, f, *args, **kwargs):
        if "checkpoint-8" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "m"
    with pytest.raises(LoraComposeError, match=r"no space left on the device while training .*; free some space "
                                               r"and run the same command with --resume: it continues from "
                                               r"checkpoint-4"):
        train_module(tiny_config(tiny_model_dir), out, progress=False)
    monkeypatch.undo()
    assert not out.exists() and not (tmp_path / "m.training" / ".staging").exists()

    write_metadata = train.write_metadata

    def full_at_the_end(directory, metadata):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train, "write_metadata", full_at_the_end)  # the whole run, then the final write fails
    with pytest.raises(LoraComposeError, match="it continues from checkpoint-8"):
        train_module(tiny_config(tiny_model_dir), out, resume=True, progress=False)
    monkeypatch.setattr(train, "write_metadata", write_metadata)
    assert not out.exists() and not list(tmp_path.glob(".m.staging-*"))  # no half-written module
    resumed = train_module(tiny_config(tiny_model_dir), out, resume=True, progress=False)
    assert resumed.metadata["training"]["resumed_from"] == "checkpoint-8"
    same_adapter(straight.path, resumed.path)


def test_a_diverged_run_stops_with_a_message_and_non_finite_values_are_written_as_null(tiny_model_dir, tmp_path):
    out = tmp_path / "m"
    with pytest.raises(LoraComposeError, match=r"training diverged: the training loss was nan at step \d+"):
        train_module(tiny_config(tiny_model_dir, learning_rate=1e30, steps=6, save_every=2), out, progress=False)
    assert not out.exists() and not (tmp_path / "m.training").exists()
    history = train.finite_history([{"loss": float("nan"), "grad_norm": float("inf"), "step": 3}])
    assert json.dumps(history, allow_nan=False) == '[{"loss": null, "grad_norm": null, "step": 3}]'
