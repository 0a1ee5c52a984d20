"""The runner on a two-cell grid (tiny random model): end to end, cached reruns, a killed run, Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from experiments_helpers import tiny_spec, write_spec

from loracompose.experiments.cache import stage_path
from loracompose.experiments.spec import parse_spec
from loracompose.experiments.store import IDENTITY, METRICS, Store
from loracompose.experiments.runner import run_experiment

SOURCE = Path(__file__).resolve().parents[1] / "src"


def results(workdir: Path, experiment: str = "tiny") -> list[dict]:
    with Store(Path(workdir) / "results.sqlite") as store:
        rows = store.results(experiment=experiment)
        samples = store.samples(experiment=experiment)
    numbers = [{c: r[c] for c in (*IDENTITY, *METRICS, "generate_key", "evaluate_key")} for r in rows]
    return [{**n, "model": Path(n["model"]).name} for n in numbers] + \
        [(s["condition"], s["prompt"], s["sample"], s["text"], s["hits"], s["soft"], s["nll"]) for s in samples]


@pytest.fixture(scope="module")
def first(tiny_model_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("grid")
    summary = run_experiment(parse_spec(tiny_spec(tiny_model_dir, workdir)), progress=False)
    return workdir, summary, results(workdir)


def test_two_cell_grid_runs_end_to_end(first):
    workdir, summary, rows = first
    assert summary.units == 3 and dict(summary.stages_run) == {"train": 1, "generate": 2, "evaluate": 2}
    table = [r for r in rows if isinstance(r, dict)]
    assert [r["condition"] for r in table] == ["base", "single:rotten_tomatoes"]
    for r in table:
        assert r["n"] == 6 and 0 <= r["hard_low"] <= r["hard"] <= r["hard_high"] <= 1
        assert r["perplexity"] > 1 and 0 < r["distinct_2"] <= 1
        assert stage_path(workdir, "generate", r["generate_key"]).is_file()
        assert stage_path(workdir, "evaluate", r["evaluate_key"]).is_file()
    assert len([r for r in rows if isinstance(r, tuple)]) == 12  # 2 cells × 3 prompts × 2 samples
    modules = list((workdir / "cache" / "train").iterdir())
    assert len(modules) == 1 and (modules[0] / "loracompose.json").is_file()
    log = summary.log.read_text()
    assert "done: train positive@rotten_tomatoes" in log and "run tiny: done" in log


def test_rerun_does_no_work(first, tiny_model_dir):
    workdir, _, rows = first
    summary = run_experiment(parse_spec(tiny_spec(tiny_model_dir, workdir)), progress=False)
    assert summary.units == 3 and not summary.stages_run
    assert results(workdir) == rows


def test_changed_generation_setting_reruns_generation_and_evaluation_only(first, tiny_model_dir):
    workdir, _, rows = first
    spec = tiny_spec(tiny_model_dir, workdir, name="tiny-longer",
                     generate={"max_new_tokens": 8, "batch_size": 8})
    summary = run_experiment(parse_spec(spec), progress=False)
    assert dict(summary.stages_run) == {"generate": 2, "evaluate": 2}
    changed = results(workdir, "tiny-longer")
    assert {r["generate_key"] for r in changed if isinstance(r, dict)}.isdisjoint(
        {r["generate_key"] for r in rows if isinstance(r, dict)})


def test_killed_run_resumes_with_the_same_results(first, tiny_model_dir, tmp_path):
    _, _, rows = first
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec(tiny_model_dir, tmp_path / "work"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SOURCE)}
    process = subprocess.Popen([sys.executable, "-m", "loracompose.cli", "run", str(spec), "--no-progress"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    train = tmp_path / "work" / "cache" / "train"
    deadline = time.time() + 240
    while not list(train.glob("*/loracompose.json")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # the first stage is done; the cells are not
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    with Store(tmp_path / "work" / "results.sqlite") as store:
        assert len(store.results(experiment="tiny")) < 2
        assert store.runs()[-1]["status"] == "running"  # killed: never marked finished
    summary = run_experiment(parse_spec(tiny_spec(tiny_model_dir, tmp_path / "work")), progress=False)
    assert "train" not in summary.stages_run and summary.stages_run["evaluate"] >= 1
    assert results(tmp_path / "work") == rows


def test_ray_executor_gives_the_same_results(first, tiny_model_dir, tmp_path):
    ray = pytest.importorskip("ray")
    from loracompose.experiments.executors import RayExecutor

    _, _, rows = first
    spec = parse_spec(tiny_spec(tiny_model_dir, tmp_path / "work"))
    summary = run_experiment(spec, RayExecutor(num_cpus=2), progress=False)
    assert not ray.is_initialized()  # the executor started the local instance, and shut it down
    assert dict(summary.stages_run) == {"train": 1, "generate": 2, "evaluate": 2}
    # Same keys, texts, hits and metrics. Floats to 1e-6 relative: in-process, perplexity scores every
    # cell's texts in one batched pass, a Ray task its own cell's, and a batch's padding changes the
    # float summation order (seen once in CI: a perplexity differing in the last digits).
    ray_rows = results(tmp_path / "work")
    assert len(ray_rows) == len(rows)
    for got, want in zip(ray_rows, rows):
        if isinstance(want, dict):
            assert got.keys() == want.keys()
            got, want = list(got.values()), list(want.values())
        assert [x if isinstance(x, str) else pytest.approx(x, rel=1e-6, nan_ok=True) for x in got] == list(want)


def test_plan_flag_runs_nothing_and_counts_the_finished_grid(first, tiny_model_dir, tmp_path, capsys):
    from loracompose.cli import main

    workdir, _, rows = first
    spec = write_spec(tmp_path / "tiny.yaml", tiny_spec(tiny_model_dir, workdir))
    main(["run", str(spec), "--plan"])
    out = capsys.readouterr().out
    assert "nothing is run" in out
    # one module of 3 steps × batch 2 × 32 tokens, and two cells of 3 prompts × 2 samples × 6 tokens, all done
    assert out.splitlines()[-2].split() == ["all", "train", "1", "1", "192", "0"]
    assert out.splitlines()[-1].split() == ["all", "cell", "2", "2", "72", "0", "12", "0"]
    assert results(workdir) == rows
