"""The composition commands end to end on the tiny model: files written, messages on bad input."""

import json

import pytest
import torch
from peft import PeftModel

from compose_helpers import peft_output_sum
from loracompose.cli import main
from loracompose.models import load_base
from loracompose.testing import random_adapter

IDS = torch.tensor([[1, 17, 300, 4000, 52, 9, 8, 77]])


@pytest.fixture(scope="module")
def module_dir(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-modules")
    random_adapter(tiny_model_dir, root / "pos", seed=51)
    random_adapter(tiny_model_dir, root / "neg", seed=52, rank=8)
    return root


def pruned_logits(model_dir, adapter, density):
    """Logits of `adapter` with only the largest `density` share of |A| and of |B| kept (scales as saved).

    That is TIES of a single module: with one module the sign election keeps every surviving
    entry and the disjoint mean is the entry itself. (PEFT turns a one-adapter TIES into
    `linear`, no trimming, so it is no reference here.)
    """
    model = PeftModel.from_pretrained(load_base(str(model_dir), quantize=None).model, str(adapter))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                keep = torch.zeros(param.numel(), dtype=torch.bool)
                keep[param.abs().flatten().topk(int(density * param.numel())).indices] = True
                param.mul_(keep.view_as(param))
        return model.eval()(IDS).logits


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_generate_writes_one_record_per_prompt_seed_and_sample(tiny_model_dir, module_dir, tmp_path, capsys):
    out = tmp_path / "gens.jsonl"
    code, stdout, _ = run(capsys, "generate", "--model", tiny_model_dir, "--modules", module_dir, "--compose",
                          "pos=1,neg=0.5", "--method", "output-sum", "--prompts", "pplm", "--seeds", "1,2",
                          "--samples", "2", "--max-new-tokens", "4", "--out", out)
    assert code == 0 and "60 generations written" in stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 15 * 2 * 2
    assert {(r["seed"], r["sample"]) for r in rows} == {(1, 0), (1, 1), (2, 0), (2, 1)}
    assert rows[0]["composition"]["weights"] == {"pos": 1.0, "neg": 0.5}
    assert {"prompt", "text", "seed", "sample", "composition", "generation", "model", "loracompose_version"} <= set(rows[0])


def test_compose_and_export_write_plain_peft_adapters(tiny_model_dir, module_dir, tmp_path, capsys):
    code, stdout, _ = run(capsys, "export", "--model", tiny_model_dir, "--modules", module_dir, "--compose",
                          "pos=1,neg=-0.5", "--out", tmp_path / "exported")
    assert code == 0 and "rank 12" in stdout and "--max-lora-rank >= 12" in stdout
    code, _, _ = run(capsys, "compose", "--model", tiny_model_dir, "--modules", module_dir, "--compose", "pos=1",
                     "--method", "ties", "--out", tmp_path / "tied")
    assert code == 0
    adapters = {"pos": module_dir / "pos", "neg": module_dir / "neg"}
    references = {
        # the export is the delta-sum: exactly PEFT's multi-adapter forward with scales pos ×1, neg ×−0.5
        "exported": peft_output_sum(tiny_model_dir, adapters, {"pos": 1.0, "neg": -0.5}, IDS),
        # TIES of one module at the CLI's default density 0.5: the largest half of A and of B, by hand
        "tied": pruned_logits(tiny_model_dir, adapters["pos"], 0.5),
    }
    for name, expected in references.items():
        model = PeftModel.from_pretrained(load_base(str(tiny_model_dir), quantize=None).model, str(tmp_path / name))
        with torch.no_grad():
            got = model.eval()(IDS).logits
        # same maths in another order (one merged adapter vs PEFT's per-adapter sum): float32 rounding only
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=name)
    meta = json.loads((tmp_path / "exported" / "loracompose.json").read_text())
    assert meta["composition"]["method"] == "delta-sum" and meta["composition"]["weights"] == {"pos": 1.0,
                                                                                              "neg": -0.5}
    code, _, err = run(capsys, "export", "--model", tiny_model_dir, "--modules", module_dir, "--compose", "pos=1",
                       "--out", tmp_path / "exported")
    assert code == 2 and "already exists; choose another --out or pass --overwrite" in err


def test_learn_weights_cli(tiny_model_dir, module_dir, tmp_path, capsys):
    examples = tmp_path / "examples.txt"
    examples.write_text("\n".join(f"A lovely film, number {i}." for i in range(10)))
    code, stdout, _ = run(capsys, "learn-weights", "--model", tiny_model_dir, "--modules", module_dir,
                          "--examples", examples, "--steps", "3", "--out", tmp_path / "w.json")
    assert code == 0 and "weights: neg=" in stdout
    assert set(json.loads((tmp_path / "w.json").read_text())["weights"]) == {"pos", "neg"}


def test_composition_errors_on_the_command_line(tiny_model_dir, module_dir, tmp_path, capsys):
    base = ["generate", "--model", tiny_model_dir, "--modules", module_dir, "--prompt", "x", "--max-new-tokens", "2"]
    code, _, err = run(capsys, *base, "--compose", "sport=1")
    assert code == 2 and "unknown module 'sport'; known modules: neg, pos" in err
    code, _, err = run(capsys, *base, "--compose", "pos=lots")
    assert code == 2 and "bad composition entry 'pos=lots'" in err
    code, _, err = run(capsys, "compose", "--model", tiny_model_dir, "--modules", module_dir, "--compose",
                       "pos=1,neg=1", "--method", "weights-average", "--out", tmp_path / "avg")
    assert code == 2 and "all modules need the same rank" in err and not (tmp_path / "avg").exists()
    code, _, err = run(capsys, *base[:-4], "--compose", "pos=1", "--prompts", "missing.txt")
    assert code == 2 and "unknown prompt set 'missing.txt'" in err
    code, _, err = run(capsys, *base, "--compose", "pos=1", "--seeds", "1,two")
    assert code == 2 and "--seeds '1,two' must be whole numbers" in err
    code, _, err = run(capsys, *base, "--top-p", "1.5")
    assert code == 2 and "top-p must be in (0, 1]" in err
    code, _, err = run(capsys, *base, "--samples", "0")
    assert code == 2 and "--samples >= 1" in err
    code, out, _ = run(capsys, "modules", module_dir)
    assert code == 0 and "pos" in out and "rank=8" in out
