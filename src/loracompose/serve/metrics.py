"""Prometheus metrics of one server (prometheus-client), served as text at GET /metrics.

    loracompose_queue_depth                     requests waiting for batch rows (gauge)
    loracompose_batch_rows                      forward rows in the running batch after the last step (gauge;
                                                a logit-sum sequence takes one row per member)
    loracompose_running_requests                requests decoding now (gauge)
    loracompose_modules                         modules served now (gauge; changes with hot-loading)
    loracompose_generated_tokens_total          tokens sampled (counter: rate() is tokens/s)
    loracompose_time_to_first_token_seconds     arrival → first token, per request (histogram)
    loracompose_request_latency_seconds         arrival → complete answer, per finished request (histogram)
    loracompose_requests_rejected_total         429s: the queue was full (counter)
    loracompose_requests_timed_out_total        408s: past the request deadline (counter)

Each server has its own registry (not the process-global one), so several servers in one
process (tests, benchmarks) keep their counts apart.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds: from a few decode steps of a tiny model to the default 120 s request deadline.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, queue_depth: Callable[[], float], batch_rows: Callable[[], float],
                 running: Callable[[], float], modules: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        for name, text, read in (("queue_depth", "requests waiting for batch rows", queue_depth),
                                 ("batch_rows", "forward rows in the running batch", batch_rows),
                                 ("running_requests", "requests decoding now", running),
                                 ("modules", "modules served now", modules)):
            Gauge(f"loracompose_{name}", text, registry=r).set_function(read)
        self.tokens = Counter("loracompose_generated_tokens", "tokens sampled", registry=r)
        self.first_token = Histogram("loracompose_time_to_first_token_seconds", "arrival to first token",
                                     buckets=BUCKETS, registry=r)
        self.latency = Histogram("loracompose_request_latency_seconds", "arrival to complete answer",
                                 buckets=BUCKETS, registry=r)
        self.rejected = Counter("loracompose_requests_rejected", "requests refused with 429 (queue full)",
                                registry=r)
        self.timed_out = Counter("loracompose_requests_timed_out", "requests cancelled past their deadline (408)",
                                 registry=r)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
