"""Figure 4 — serving: requests/s and p50/p95 latency under a bounded loopback load.

    mixed    each request carries one of the 16 mixed-batch compositions (drawn by a seeded generator)
    shared   every request carries the same composition (the largest of those 16)
    mixed_all_rows   the mixed load on a server whose batch holds every client (--max-batch-rows 32)
    lone     the mixed requests from 1 client: a request with the server to itself, the reference of
             ratio_mixed_p50_over_lone_p50 (p50 under the 32-client load ÷ a lone request's p50)
    short_during_long   four 160-token chat requests start together; 2 s later a 4-token one arrives;
             ratio_short_over_long = its latency ÷ the long ones' mean latency (with continuous
             batching it joins at the next step instead of waiting for their batch to end)

The server runs in this process's background (`loracompose.serve.background.serve_in_background`)
and `run_load_test` drives it over loopback. The figure needs the serving
package (`loracompose.serve`); without it, it is recorded as skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import Settings, prepare_modules
from benchmarks.mixed_batch import compositions


def missing_reason() -> str | None:
    """Why the figure cannot run here, or None."""
    try:
        found = importlib.util.find_spec("loracompose.serve.loadtest") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        return "loracompose.serve.loadtest is not in this checkout (the serving issue has not landed)"
    return None


def run(settings: Settings, model_dir: str) -> dict:
    reason = missing_reason()
    if reason:
        return {"skipped": reason}
    from loracompose.serve.background import serve_in_background
    from loracompose.serve.loadtest import run_load_test

    clients, requests, max_tokens = (4, 16, 4) if settings.quick else (32, 200, 16)
    with tempfile.TemporaryDirectory() as tmp:
        paths, modules = prepare_modules(settings, model_dir, Path(tmp))
        modules_dir = Path(tmp) / "bank"
        modules_dir.mkdir()
        for name, path in paths.items():
            (modules_dir / name).symlink_to(path.resolve())
        mixed = [{"modules": c, "method": "output-sum"} for c in compositions(list(paths), settings.mixed_requests)]
        loads = {"mixed": mixed, "shared": [mixed[len(mixed) - 1]]}
        results = {}
        lone_requests = 4 if settings.quick else 12
        with serve_in_background(settings.model, str(modules_dir), judges="none") as url:  # no judge load
            results["lone"] = run_load_test(url, mixed, clients=1, requests=lone_requests, max_tokens=max_tokens,
                                            seed=1)
            for name, comps in loads.items():
                results[name] = run_load_test(url, comps, clients=clients, requests=requests,
                                              max_tokens=max_tokens, seed=0)
                if not results[name]["ok"]:
                    raise RuntimeError(f"no {name}-composition request succeeded: {results[name]['statuses']}")
            results["short_during_long"] = short_during_long(url, mixed, quick=settings.quick)
        # The same mixed load with a batch as large as the clients: no request waits for rows.
        with serve_in_background(settings.model, str(modules_dir), judges="none", max_batch_rows=clients) as url:
            results["mixed_all_rows"] = run_load_test(url, mixed, clients=clients, requests=requests,
                                                      max_tokens=max_tokens, seed=0)
    mixed_rps, shared_rps = results["mixed"].get("requests_per_s"), results["shared"].get("requests_per_s")
    lone_p50 = results["lone"].get("p50_s")
    return {"setting": {"clients": clients, "requests": requests, "max_tokens": max_tokens,
                        "compositions_mixed": len(mixed), "lone_requests": lone_requests},
            "modules": modules, **results,
            "ratio_mixed_over_shared_requests_per_s": mixed_rps / shared_rps if mixed_rps and shared_rps else None,
            "ratio_mixed_p50_over_lone_p50": results["mixed"]["p50_s"] / lone_p50 if lone_p50 else None,
            "ratio_mixed_all_rows_p50_over_lone_p50":
                results["mixed_all_rows"]["p50_s"] / lone_p50 if lone_p50 and results["mixed_all_rows"]["ok"] else None,
            "ratio_short_over_long": results["short_during_long"]["ratio_short_over_long"]}


# Chat prompts the instruct model answers at length: the long requests must not stop early at EOS
# (a plain "The movie" continuation often ends within 2 s, before the short request arrives);
# `long_completion_tokens` records that they did not.
LONG_PROMPTS = ["Tell me a long story about a lighthouse keeper and the sea.",
                "Write a long, detailed essay about the history of bridges.",
                "Describe, in many paragraphs, a journey across a desert.",
                "Write a long story about a dragon who learns to cook."]


def short_during_long(url: str, compositions: list[dict], quick: bool = False) -> dict:
    """Four long chat requests start together; `delay` s later a short one arrives. Latencies and their ratio."""
    import httpx

    long_tokens, short_tokens, delay = (24, 2, 0.2) if quick else (160, 4, 2.0)
    model = httpx.get(f"{url}/v1/models", timeout=30).json()["data"][0]["id"]
    latency: dict[str, float] = {}
    answers: dict[str, httpx.Response] = {}

    def send(key: str, prompt: str, tokens: int, composition: dict | None, seed: int) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
                "seed": seed, "composition": composition}
        start = time.perf_counter()
        answers[key] = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
        latency[key] = time.perf_counter() - start

    # The long ones on the base (some compositions end these answers early at EOS), the short one composed:
    # it joins a batch of other compositions.
    threads = [threading.Thread(target=send, args=(f"long{i}", LONG_PROMPTS[i], long_tokens, None, i))
               for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(delay)
    send("short", "Say hello.", short_tokens, compositions[-1], 99)
    for thread in threads:
        thread.join()
    statuses = {key: response.status_code for key, response in answers.items()}
    if set(statuses.values()) != {200}:
        raise RuntimeError(f"a request of the short-during-long load failed: {statuses}")
    long_mean = statistics.fmean(latency[f"long{i}"] for i in range(4))
    return {"long_tokens": long_tokens, "short_tokens": short_tokens, "delay_s": delay,
            "long_completion_tokens": [answers[f"long{i}"].json()["usage"]["completion_tokens"] for i in range(4)],
            "long_mean_s": round(long_mean, 3), "short_s": round(latency["short"], 3),
            "ratio_short_over_long": latency["short"] / long_mean}
