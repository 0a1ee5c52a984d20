"""Module training on the tiny random llama and real packaged data."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import TrainerCallback

from train_helpers import tiny_train_config
from loracompose import LoraComposeError
from loracompose.cli import main
from loracompose.models import load_base
from loracompose.train import train_module


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("modules") / "positive@rotten_tomatoes"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order, so the golden losses below hold to float32 rounding
    try:
        config = tiny_train_config(tiny_model_dir, steps=16, eval_every=8, save_every=8)
        return train_module(config, out, progress=False)
    finally:
        torch.set_num_threads(threads)


# The first optimiser steps of that run (seed 42 for data order, LoRA init and dropout; NF4 base):
# a change in the data, splits, packing, seeding, LoRA initialisation or optimiser moves them by
# far more than 1e-2. Tolerance 5e-4: float32 rounding only (1 and 2 threads agreed to 1e-6 here).
GOLDEN_FIRST_LOSSES = [10.96796, 11.31307, 10.98997]
GOLDEN_INITIAL_VALIDATION_LOSS = 11.04080


def test_first_losses_match_their_golden_values(trained):
    training = trained.metadata["training"]
    losses = [e["loss"] for e in training["loss_history"] if "loss" in e]
    assert losses[:3] == pytest.approx(GOLDEN_FIRST_LOSSES, abs=5e-4)
    assert training["initial_validation_loss"] == pytest.approx(GOLDEN_INITIAL_VALIDATION_LOSS, abs=5e-4)


def test_loss_goes_down_on_real_data(trained):
    training = trained.metadata["training"]
    # Validation rows are fixed, so this comparison has no sampling noise. A random
    # 49k-vocabulary model starts near ln(49152) = 10.8; 16 LoRA steps must pull it down.
    assert training["initial_validation_loss"] > 10
    assert training["validation_loss"] < training["initial_validation_loss"] - 0.1
    losses = [e["loss"] for e in training["loss_history"] if "loss" in e]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_module_directory_and_metadata(trained):
    files = {p.name for p in trained.path.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "loracompose.json"} <= files
    assert not trained.path.with_name(trained.path.name + ".training").exists()  # checkpoints cleaned up
    meta = json.loads((trained.path / "loracompose.json").read_text())
    assert meta["name"] == "positive@rotten_tomatoes" and meta["label"] == "positive"
    assert meta["attribute"] == "sentiment" and meta["mixing"] == "concat"
    (source,) = meta["datasets"]
    # 55% of ~4.2k positive snippets: 15% are validation and test, 30% the judges' split
    assert source["name"] == "rotten_tomatoes" and len(source["content_hash"]) == 64
    assert 2000 < source["train_texts"] < 2600
    assert meta["base"]["architecture"] == "LlamaForCausalLM" and meta["base"]["linear_shapes"]
    training = meta["training"]
    assert training["steps"] == 16 and training["settings"]["rank"] == 8
    assert training["validation_loss"] is not None and training["train_loss"] < training["first_train_loss"]
    assert training["real_tokens_trained"] > 0 and training["real_tokens_per_second"] > 0
    assert training["peak_memory_mb"] > 0 and meta["loracompose_version"]


def test_adapter_reloads_with_plain_peft_and_gives_the_same_logits(trained, tiny_model_dir):
    weights = load_file(str(trained.path / "adapter_model.safetensors"))
    lora_b = [t for k, t in weights.items() if "lora_B" in k]
    assert lora_b and all(t.abs().max() > 0 for t in lora_b)  # trained: B moved away from its zero init
    base = load_base(str(tiny_model_dir), quantize="nf4")
    reloaded = PeftModel.from_pretrained(base.model, str(trained.path)).eval()
    ids = base.tokenizer(["A touching story of a family"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = trained.model(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
        with reloaded.disable_adapter():
            bare = reloaded(input_ids=ids).logits
    # Same NF4 base, same adapter tensors: identical computation up to float32 rounding.
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert (got - bare).abs().max() > 1e-2  # and the adapter does change the output


class KillAfterCheckpoint(TrainerCallback):
    """Simulates a crash right after the checkpoint at `step` was written."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("killed")


def test_killed_run_resumes_to_the_same_adapter(tiny_model_dir, tmp_path):
    config = tiny_train_config(tiny_model_dir)
    straight = train_module(config, tmp_path / "straight", progress=False)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="killed"):
        train_module(config, out, callbacks=[KillAfterCheckpoint(4)], progress=False)
    assert not out.exists()  # nothing that looks like a finished module
    assert (tmp_path / "resumed.training" / "checkpoint-4").is_dir()
    resumed = train_module(config, out, resume=True, progress=False)
    assert resumed.metadata["training"]["resumed_from"] == "checkpoint-4"
    a = load_file(str(straight.path / "adapter_model.safetensors"))
    b = load_file(str(resumed.path / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        # Optimiser, scheduler, RNG (dropout) and data order are restored: same arithmetic, same result.
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7)


def test_combined_training_records_every_dataset(tiny_model_dir, tmp_path):
    config = tiny_train_config(tiny_model_dir, datasets=["rotten_tomatoes", "tweets"], mixing="balanced", steps=2,
                         eval_every=0, save_every=0)
    result = train_module(config, tmp_path / "combined", progress=False)
    meta = result.metadata
    assert meta["name"] == "positive@rotten_tomatoes+tweets" and meta["mixing"] == "balanced"
    assert [d["name"] for d in meta["datasets"]] == ["rotten_tomatoes", "tweets"]
    assert [d["share"] for d in meta["datasets"]] == [0.5, 0.5]


def run_cli(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_bad_inputs_give_one_clear_message_and_leave_nothing(tiny_model_dir, tmp_path, capsys, labelled_frame):
    model = str(tiny_model_dir)
    out = tmp_path / "m"
    common = ["train", "--model", model, "--out", str(out), "--steps", "1", "--batch-size", "2", "--seq-len", "16"]

    code, err = run_cli(capsys, *common, "--data", "rotten_tomatoes", "--label", "happy")
    assert code == 2 and "unknown label 'happy' for dataset 'rotten_tomatoes'; its labels are negative, positive" in err
    code, err = run_cli(capsys, *common, "--data", "imbd", "--label", "positive")
    assert code == 2 and "unknown dataset 'imbd'; built-in datasets: imdb, rotten_tomatoes" in err
    code, err = run_cli(capsys, "train", "--model", "nope", "--out", str(out), "--data", "imdb", "--label", "positive")
    assert code == 2 and "unknown model 'nope'" in err and "smollm2-135m" in err

    small = tmp_path / "small.csv"
    labelled_frame.iloc[10:30].to_csv(small, index=False)  # 10 texts per label
    code, err = run_cli(capsys, *common, "--data", str(small), "--label", "good", "--text-column", "review",
                        "--label-column", "stars")
    assert code == 2 and "label 'good' has" in err and "at least 16 are needed" in err
    code, err = run_cli(capsys, *common, "--data", str(small), "--label", "good")
    assert code == 2 and "lacks the column(s) 'text', 'label'" in err
    code, err = run_cli(capsys, *common, "--data", str(tmp_path / "absent.jsonl"), "--label", "good")
    assert code == 2 and "does not exist" in err
    code, err = run_cli(capsys, *common, "--data", "imdb", "--label", "positive", "--mixing", "shuffle")
    assert code == 2 and "unknown mixing 'shuffle'" in err
    code, err = run_cli(capsys, *common, "--data", "imdb", "--label", "positive", "--resume")
    assert code == 2 and "no checkpoint to resume" in err
    assert not out.exists() and not (tmp_path / "m.training").exists()


def test_existing_module_needs_overwrite_and_resume_needs_same_settings(tiny_model_dir, tmp_path, capsys):
    config = tiny_train_config(tiny_model_dir, steps=4, save_every=2, eval_every=0)
    out = tmp_path / "m"
    with pytest.raises(RuntimeError, match="killed"):
        train_module(config, out, callbacks=[KillAfterCheckpoint(2)], progress=False)
    common = ["train", "--model", str(tiny_model_dir), "--out", str(out), "--data", "rotten_tomatoes",
              "--label", "positive", "--steps", "4", "--batch-size", "4", "--seq-len", "32", "--lr", "1e-2",
              "--warmup-steps", "0", "--eval-every", "0", "--eval-rows", "4", "--save-every", "2",
              "--dropout", "0.1"]
    code, err = run_cli(capsys, *common, "--rank", "4", "--resume")
    assert code == 2 and "settings differ from the checkpoint's" in err and "rank: checkpoint 8, now 4" in err
    assert main(common + ["--resume"]) == 0
    code, err = run_cli(capsys, *common)
    assert code == 2 and "already holds a module; pass --overwrite" in err
    assert main(common + ["--overwrite", "--steps", "1", "--save-every", "0"]) == 0
    assert json.loads((out / "loracompose.json").read_text())["training"]["steps"] == 1
