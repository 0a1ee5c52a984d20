"""The benchmark harness's --quick smoke run: it runs every figure on the tiny model and writes valid output.

Nothing here is about speed (timings from a test are meaningless on a shared
machine); it checks that the harness measures each configuration, reports
medians with spreads and ratios, records the machine, and writes the table.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
STAT_KEYS = {"median", "iqr", "min", "max", "n"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, smollm2_dir):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), out.with_suffix(".md").read_text(), proc.stdout


def _positive_stat(stat):
    assert STAT_KEYS <= set(stat) and stat["n"] >= 1
    assert 0 < stat["min"] <= stat["median"] <= stat["max"] and stat["iqr"] >= 0


def test_quick_run_records_machine_and_every_figure(quick_run):
    bench, _, _ = quick_run
    meta = bench["meta"]
    assert meta["cores"] >= 1 and meta["cpu"] and meta["date"]
    assert {"torch", "transformers", "peft", "bitsandbytes"} <= set(meta["versions"])
    assert all(meta["versions"][p] for p in ("torch", "transformers", "peft", "bitsandbytes"))
    assert set(bench["figures"]) == {"composition", "mixed_batch", "training", "serving", "evaluation"}
    for name, figure in bench["figures"].items():
        assert "failed" not in figure, (name, figure)
        assert figure["measured"]["date"] == meta["date"]


def test_composition_figure_times_every_configuration(quick_run):
    figure = quick_run[0]["figures"]["composition"]
    ns = figure["setting"]["ns"]
    assert figure["modules"]["random"]  # the tiny model has no real modules: all random, and said so
    for quantize in ("none", "nf4"):
        for batch in figure["setting"]["decode_batch"]:
            block = figure[quantize][f"batch_{batch}"]
            names = {"base"} | {f"{kind}-{n}" for kind in ("fused", "peft", "merged") for n in ns}
            assert set(block["configs"]) == names
            for row in block["configs"].values():
                _positive_stat(row["step_ms"])
                _positive_stat(row["tokens_per_s"])
                assert row["step_ms"]["n"] == figure["setting"]["repeats"] * figure["setting"]["steps_per_run"]
            # each ratio is the quotient of the medians it names, from the same block of this run
            median = {name: row["step_ms"]["median"] for name, row in block["configs"].items()}
            assert set(block["ratios"]) == {str(n) for n in ns}
            for n, r in block["ratios"].items():
                assert r["fused_over_fused_1"] == pytest.approx(median[f"fused-{n}"] / median[f"fused-{min(ns)}"])
                assert r["peft_over_fused"] == pytest.approx(median[f"peft-{n}"] / median[f"fused-{n}"])
                assert r["fused_over_base"] == pytest.approx(median[f"fused-{n}"] / median["base"])
                assert r["merged_over_base"] == pytest.approx(median[f"merged-{n}"] / median["base"])
            assert all(r["peft_over_fused"] > 0 for r in block["ratios"].values())


def test_other_figures_have_measurements_and_ratios(quick_run):
    figures = quick_run[0]["figures"]
    mixed = figures["mixed_batch"]
    _positive_stat(mixed["tokens_per_s"]["batched"])
    _positive_stat(mixed["tokens_per_s"]["separate"])
    assert len(mixed["setting"]["compositions"]) == 16
    assert len({json.dumps(c, sort_keys=True) for c in mixed["setting"]["compositions"]}) == 16
    training = figures["training"]["tweets"]
    for side in ("project", "reference"):
        _positive_stat(training[side]["real_tokens_per_s_per_step"])
        assert training[side]["peak_memory_mb"] > 0 and training[side]["timed_steps"] >= 1
    assert training["ratio_tokens_per_s"] > 0 and training["ratio_peak_memory"] > 0
    evaluation = figures["evaluation"]
    assert {"tfidf-logreg", "vader"} <= set(evaluation["judges"])
    _positive_stat(evaluation["perplexity"]["batch_8_texts_per_s"])
    serving = figures["serving"]
    assert "skipped" in serving or serving["mixed"]["ok"] > 0 and serving["shared"]["ok"] > 0


def test_targets_and_table_are_written(quick_run):
    bench, table, stdout = quick_run
    names = {t["target"] for t in bench["targets"]}
    assert "fused 8-module step ÷ fused 1-module step" in names
    assert "mixed batch of 16 ÷ 16 separate generations (tokens/s)" in names
    assert all(t["measured"] > 0 for t in bench["targets"])
    assert "| target |" in table and "Decode step, NF4 base" in table and "Training" in table
    assert table.strip() in stdout
