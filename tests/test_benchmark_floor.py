"""The floor figure (issue 15) on the tiny model: every configuration timed, each ratio the quotient it names.

Nothing here is about speed (a test's timings mean nothing on a shared machine).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def floor_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--only", "floor", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), out.with_suffix(".md").read_text()


def test_floor_times_the_large_bank_beside_its_active_modules(floor_run):
    bench, table = floor_run
    figure = bench["figures"]["floor"]
    setting = figure["setting"]
    big = f"bank{setting['bank']}-3"
    assert list(figure["step_ms"]) == ["base", "fused-3", big, "fused-8", "fused-8-separate", "peft-8"]
    median = {name: stat["median"] for name, stat in figure["step_ms"].items()}
    for stat in figure["step_ms"].values():
        assert stat["n"] == setting["repeats"] * setting["steps_per_run"] and 0 < stat["min"] <= stat["max"]
    assert figure["ratios"] == pytest.approx({
        "bank_over_fused_3": median[big] / median["fused-3"], "fused_8_over_base": median["fused-8"] / median["base"],
        "peft_8_over_fused_8": median["peft-8"] / median["fused-8"],
        "separate_a_over_shared_a": median["fused-8-separate"] / median["fused-8"]})
    loop = figure["decode_loop"]
    # the first loop step is the prefill: each run contributes loop_tokens - 1 decode steps, as the bare runs do
    assert loop["loop_step_ms"]["n"] == loop["bare_step_ms"]["n"] == setting["repeats"] * (setting["loop_tokens"] - 1)
    assert loop["loop_over_step_bound"] == pytest.approx(
        loop["loop_tokens_per_s"]["median"] * loop["bare_step_ms"]["median"] / 1000)
    targets = {t["target"]: t for t in bench["targets"]}
    assert targets["fused 8-module step ÷ bare base step"]["measured"] == figure["ratios"]["fused_8_over_base"]
    assert targets["sampling loop tokens/s × bare model step time"]["needed"] == ">= 0.9"
    assert "Floor (issue 15)" in table and "Sampling loop" in table
