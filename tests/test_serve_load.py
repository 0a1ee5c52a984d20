"""A bounded load test on loopback: 32 clients, a few hundred requests, random compositions."""

from __future__ import annotations

import pytest

psutil = pytest.importorskip("psutil")
pytest.importorskip("httpx")

from serve_helpers import MODULES, make_modules  # noqa: E402
from loracompose.errors import LoraComposeError  # noqa: E402
from loracompose.serve.background import serve_in_background  # noqa: E402
from loracompose.serve.loadtest import random_compositions, run_load_test  # noqa: E402


def test_load_test_answers_every_request_without_5xx_and_bounded_memory(tiny_model_dir, tmp_path):
    modules_dir = make_modules(tiny_model_dir, tmp_path)
    compositions = random_compositions(list(MODULES), count=10, seed=1, methods=("output-sum", "logit-sum"))
    assert len({str(c) for c in compositions}) == 10
    process = psutil.Process()
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_batch_rows=16, max_queue=64,
                             judges="none") as url:
        warm = run_load_test(url, compositions, clients=4, requests=8, max_tokens=4)  # first-use allocations
        rss_before = process.memory_info().rss
        result = run_load_test(url, compositions, clients=32, requests=300, max_tokens=8, seed=3, time_limit_s=240)
        rss_after = process.memory_info().rss
    assert warm["ok"] == 8
    # 32 clients fit in 16 batch rows + 64 queued: every request is answered, none with a 5xx.
    assert result["ok"] == 300 and result["errors_5xx"] == 0 and result["failed"] == result["unfinished"] == 0
    server = result["server"]
    assert server["max_queue_seen"] <= 64 and server["max_batch_rows"] <= 16 and server["queued"] == 0
    assert server["mixed_batches"] > 0 and server["max_batch_jobs"] > 1
    assert result["completion_tokens"] > 0 and result["p95_s"] >= result["p50_s"] > 0
    assert rss_after - rss_before < 300 * 2**20, (rss_before, rss_after)  # bounded: no per-request growth

    # A queue smaller than the clients: the overflow is answered 429, never 5xx, and the bound holds.
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_batch_rows=8, max_queue=4,
                             judges="none") as url:
        result = run_load_test(url, compositions, clients=32, requests=120, max_tokens=8, seed=4, time_limit_s=240)
    assert result["ok"] + result["rejected_429"] == 120 and result["errors_5xx"] == 0, result["statuses"]
    assert result["ok"] > 0 and result["rejected_429"] > 0
    assert result["server"]["max_queue_seen"] <= 4


def test_load_test_refuses_other_hosts():
    with pytest.raises(LoraComposeError, match="only targets loopback addresses"):
        run_load_test("http://10.0.0.1:8000", [None])


def test_serve_bench_command_runs_the_load_test_on_its_own_server(tiny_model_dir, tmp_path, capsys):
    import json

    from loracompose.cli import main

    modules_dir = make_modules(tiny_model_dir, tmp_path)
    out = tmp_path / "bench.json"
    code = main(["serve-bench", "--model", str(tiny_model_dir), "--modules", str(modules_dir), "--mix", "shared",
                 "--clients", "2", "--requests", "4", "--max-tokens", "2", "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code in (0, None) and summary["mix"] == "shared" and summary["ok"] == 4 and summary["requests"] == 4
    assert json.loads(capsys.readouterr().out) == summary
