"""GET /metrics: Prometheus series that count what the server did."""

from __future__ import annotations

import threading

import httpx
import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from serve_helpers import make_modules  # noqa: E402
from loracompose.serve.background import serve_in_background  # noqa: E402


def _samples(text: str) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if not s.labels or s.labels.get("le") is None}


def test_metrics_count_tokens_latency_and_rejections(tiny_model_dir, tmp_path):
    modules_dir = make_modules(tiny_model_dir, tmp_path / "modules")
    with serve_in_background(str(tiny_model_dir), str(modules_dir), max_queue=1, max_batch_rows=1,
                             max_tokens_cap=200, judges="none") as url:
        first = _samples(httpx.get(f"{url}/metrics").text)
        assert first["loracompose_generated_tokens_total"] == 0 and first["loracompose_modules"] == 2
        assert first["loracompose_queue_depth"] == 0 and first["loracompose_batch_rows"] == 0
        body = {"model": tiny_model_dir.name, "prompt": "The movie", "max_tokens": 120, "seed": 0}
        responses: list = []
        threads = [threading.Thread(target=lambda: responses.append(httpx.post(f"{url}/v1/completions", json=body,
                                                                             timeout=120))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        response = httpx.get(f"{url}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = _samples(response.text)
    ok = [r for r in responses if r.status_code == 200]
    rejected = [r for r in responses if r.status_code == 429]
    assert ok and rejected and len(ok) + len(rejected) == 6
    assert after["loracompose_generated_tokens_total"] == sum(r.json()["usage"]["completion_tokens"] for r in ok)
    assert after["loracompose_requests_rejected_total"] == len(rejected)
    assert after["loracompose_request_latency_seconds_count"] == len(ok)
    assert after["loracompose_time_to_first_token_seconds_count"] == len(ok)
    assert 0 < after["loracompose_time_to_first_token_seconds_sum"] < after["loracompose_request_latency_seconds_sum"]
    assert after["loracompose_requests_timed_out_total"] == 0 and after["loracompose_running_requests"] == 0


def test_metrics_count_timeouts_and_need_the_api_key(tiny_model_dir, tmp_path):
    modules_dir = make_modules(tiny_model_dir, tmp_path / "modules")
    with serve_in_background(str(tiny_model_dir), str(modules_dir), api_key="sesame", batch_window_s=0.05,
                             request_timeout_s=0.03, max_tokens_cap=200, judges="none") as url:
        key = {"Authorization": "Bearer sesame"}
        assert httpx.get(f"{url}/metrics").status_code == 401
        body = {"model": tiny_model_dir.name, "prompt": "The movie", "max_tokens": 200, "seed": 0}
        assert httpx.post(f"{url}/v1/completions", json=body, headers=key).status_code == 408
        after = _samples(httpx.get(f"{url}/metrics", headers=key).text)
    assert after["loracompose_requests_timed_out_total"] == 1
    assert after["loracompose_request_latency_seconds_count"] == 0
