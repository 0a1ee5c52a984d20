"""scripts/gpu-check.sh --dry-run: the GPU check's code on CPU with tiny shapes, so it cannot rot.

Checks the files the run writes: every correctness check passed, every study shape's
parameter count matched, and the benchmark has every row (base, fused/PEFT/merged at
N = 1, 3, 8; batch 1, 8, 64; the mixed batch) with finite positive timings. Nothing
here is about speed. The run sees only torch, transformers, PEFT, accelerate and
bitsandbytes: tests/gpu_deps_only hides the project's other dependencies, as on a
bare GPU machine.
"""

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from benchmarks.shapes import SHAPES
from test_benchmarks import _positive_stat

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu-check.sh"


HIDE_OTHER_DEPENDENCIES = Path(__file__).resolve().parent / "gpu_deps_only"


def _run(*args, timeout=600):
    path = os.pathsep.join(filter(None, [str(HIDE_OTHER_DEPENDENCIES), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONPATH": path}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    proc = _run("--dry-run", "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-4000:]
    return json.loads((out / "bench.json").read_text()), out


def _finite_positive(stat):
    _positive_stat(stat)
    assert all(math.isfinite(stat[k]) for k in ("median", "iqr", "min", "max"))


def test_checks_passed_on_cpu_and_real_shapes_match_their_parameter_counts(dry_run):
    bench, _ = dry_run
    checks = {c["check"]: c for c in bench["checks"]}
    assert set(checks) == {"output_sum", "mixed_batch", "export", "train_step"}
    for record in checks.values():
        assert record["passed"] and record["device"] == "cpu", record
    for name in ("output_sum", "mixed_batch", "export"):
        assert 0 <= checks[name]["max_abs_difference"] <= checks[name]["tolerance"]
        assert checks[name]["module_effect"] > 10 * checks[name]["tolerance"]  # the modules really act
    assert checks["train_step"]["kind"] in ("nf4", "bf16 (CPU)") and len(checks["train_step"]["losses"]) == 2
    assert set(bench["shapes"]) == set(SHAPES)
    assert all(s["matches"] for s in bench["shapes"].values())
    assert 7.9e9 < bench["shapes"]["llama-3-8b"]["parameters"] < 8.1e9


def test_every_shape_has_every_row_with_finite_positive_timings(dry_run):
    bench, _ = dry_run
    figure = bench["figures"]["study_shapes"]
    assert figure["setting"]["dry_run"] and figure["setting"]["device"] == "cpu"
    assert figure["setting"]["ns"] == [1, 3, 8] and figure["setting"]["decode_batch"] == [1, 8, 64]
    assert set(figure["shapes"]) == set(SHAPES)
    names = {"base"} | {f"{kind}-{n}" for kind in ("fused", "peft", "merged") for n in (1, 3, 8)}
    for shape in figure["shapes"].values():
        assert "skipped" not in shape, shape
        assert set(shape["bf16"]) == {"batch_1", "batch_8", "batch_64"}
        for block in shape["bf16"].values():
            assert set(block["configs"]) == names
            for row in block["configs"].values():
                _finite_positive(row["step_ms"])
                _finite_positive(row["tokens_per_s"])
            for ratios in block["ratios"].values():
                assert all(math.isfinite(v) and v > 0 for v in ratios.values())
        agreement = shape["fused_vs_peft"]  # the timed fused and PEFT sides compute the same output-sum
        assert agreement["max_abs_difference"] < 0.1 * agreement["module_effect"], agreement
        mixed = shape["mixed_batch"]
        assert len(mixed["setting"]["compositions"]) == 16
        _finite_positive(mixed["tokens_per_s"]["batched"])
        _finite_positive(mixed["tokens_per_s"]["separate"])
        assert mixed["ratio_batched_over_separate"] > 0


def test_outputs_table_log_and_reported_ratios(dry_run):
    bench, out = dry_run
    reported = [t for t in bench["targets"] if t["setting"].startswith(tuple(SHAPES))]
    # per shape: PEFT ÷ fused and fused ÷ merged at N = 8 for 3 batch sizes, and the mixed batch
    assert len(reported) == len(SHAPES) * 7 and all(t["measured"] > 0 for t in reported)
    assert {"1 checks", "2 bench", "total"} <= set(bench["parts_seconds"])
    table = (out / "bench.md").read_text()
    assert "Checks:" in table and all(f"Decode step, {name}" in table for name in SHAPES)
    log = (out / "gpu-check.log").read_text()
    assert "part 1 checks" in log and "part 2 bench" in log and "all checks passed" in log


def test_bad_options_and_a_missing_gpu_are_refused_with_a_message(tmp_path):
    proc = _run("--fast", timeout=60)
    assert proc.returncode == 2 and "unknown option '--fast'" in proc.stderr and "--dry-run" in proc.stderr
    proc = _run("--dry-run", "--budget", "-1", "--out", str(tmp_path / "negative"), timeout=300)
    assert proc.returncode == 2 and "--budget must be a positive number of seconds" in proc.stdout
    assert not (tmp_path / "negative").exists()  # a refused run leaves no folder behind
    import torch

    if not torch.cuda.is_available():
        proc = _run("--out", str(tmp_path / "gpu"), timeout=300)
        assert proc.returncode == 2 and "no CUDA device" in proc.stdout and "--dry-run" in proc.stdout
        assert not (tmp_path / "gpu").exists()
