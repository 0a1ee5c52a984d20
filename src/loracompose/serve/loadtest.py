"""A bounded load test of a running server (its client side).

    run_load_test(base_url, compositions, clients=32, requests=200, ...) → summary dict
    random_compositions(module_names, count) → compositions for it

`loracompose serve-bench` runs it from the command line (serve/cli.py), against a server
started in-process by `serve.background.serve_in_background` unless given --url.

`clients` concurrent workers share `requests` completions; each request takes a
composition from `compositions` (None = the base) and a PPLM prompt, both drawn
by a seeded generator, and its own seed. Only loopback addresses are accepted.
The run is bounded in count and in time (`time_limit_s`; requests still open
then are cancelled and counted), so it always stops by itself.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

from loracompose.errors import LoraComposeError
from loracompose.serve.background import check_loopback


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_load_test(base_url: str, compositions: list[dict | None], clients: int = 32, requests: int = 200,
                  max_tokens: int = 16, api_key: str | None = None, seed: int = 0, model: str | None = None,
                  time_limit_s: float = 600.0, request_timeout_s: float = 300.0) -> dict:
    """Send `requests` completions from `clients` concurrent clients; returns counts and timings.

    Keys: requests, ok, rejected_429, errors_4xx (other than 429), errors_5xx, failed (no answer),
    unfinished (cancelled at the time limit), statuses, completion_tokens, wall_s, requests_per_s,
    tokens_per_s, p50_s, p95_s, max_s (latency of answered 200s), server (its /health after the run).
    """
    import httpx

    from loracompose.prompts import PPLM_PROMPTS

    check_loopback(base_url)
    if clients < 1 or requests < 1 or max_tokens < 1 or not compositions:
        raise LoraComposeError("the load test needs clients, requests and max_tokens >= 1 and one composition")
    rng = random.Random(seed)
    plan = [(rng.choice(compositions), rng.choice(PPLM_PROMPTS), rng.randrange(2**31)) for _ in range(requests)]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    results: list[tuple[int, float, int]] = []  # (status, seconds, completion tokens); status 0 = no answer

    async def main() -> dict:
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=request_timeout_s,
                                     limits=httpx.Limits(max_connections=clients)) as http:
            name = model or (await http.get("/v1/models")).json()["data"][0]["id"]
            queue = list(range(requests))

            async def client() -> None:
                while queue:
                    composition, prompt, request_seed = plan[queue.pop()]
                    body = {"model": name, "prompt": prompt, "max_tokens": max_tokens, "seed": request_seed}
                    if composition:
                        body["composition"] = composition
                    start = time.perf_counter()
                    try:
                        response = await http.post("/v1/completions", json=body)
                        tokens = response.json()["usage"]["completion_tokens"] if response.status_code == 200 else 0
                        results.append((response.status_code, time.perf_counter() - start, tokens))
                    except httpx.HTTPError:
                        results.append((0, time.perf_counter() - start, 0))
                    if results[-1][0] == 429:
                        await asyncio.sleep(0.05)  # a polite client backs off a little

            started = time.perf_counter()
            tasks = [asyncio.create_task(client()) for _ in range(min(clients, requests))]
            done, pending = await asyncio.wait(tasks, timeout=time_limit_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            wall = time.perf_counter() - started
            server = (await http.get("/health")).json()
        return {"wall_s": wall, "server": server, "unfinished": requests - len(results)}

    outcome = asyncio.run(main())
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    ok = [r for r in results if r[0] == 200]
    latencies = [r[1] for r in ok]
    tokens = sum(r[2] for r in ok)
    wall = outcome["wall_s"]
    return {
        "requests": requests, "ok": len(ok), "rejected_429": statuses.get("429", 0),
        "errors_4xx": sum(n for s, n in statuses.items() if s.startswith("4") and s != "429"),
        "errors_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "failed": statuses.get("0", 0), "unfinished": outcome["unfinished"], "statuses": statuses,
        "clients": clients, "max_tokens": max_tokens, "compositions": len(compositions),
        "completion_tokens": tokens, "wall_s": round(wall, 3),
        "requests_per_s": round(len(ok) / wall, 3), "tokens_per_s": round(tokens / wall, 2),
        "p50_s": _percentile(latencies, 0.5), "p95_s": _percentile(latencies, 0.95),
        "max_s": max(latencies) if latencies else None,
        "mean_s": statistics.fmean(latencies) if latencies else None, "server": outcome["server"],
    }


def random_compositions(module_names: list[str], count: int = 8, seed: int = 0,
                        methods: tuple[str, ...] = ("output-sum",)) -> list[dict | None]:
    """`count` compositions over the modules: the base, single modules and random mixes."""
    rng = random.Random(seed)
    result: list[dict | None] = [None]
    while len(result) < count:
        chosen = rng.sample(module_names, rng.randint(1, len(module_names)))
        result.append({"modules": {n: round(rng.uniform(-1, 2), 2) for n in chosen}, "method": rng.choice(methods)})
    return result


def compositions_for(mix: str, names: list[str], count: int, seed: int) -> list[dict | None]:
    if mix == "base" or not names:
        return [None]
    if mix == "shared":
        return [{"modules": {n: 1.0 for n in names}, "method": "output-sum"}]
    return random_compositions(names, count, seed)
