"""A bounded load test of a running server, and a server started in-process for it.

    run_load_test(base_url, compositions, clients=32, requests=200, ...) → summary dict
    serve_in_background(model_spec, modules_dir, **settings) → context manager yielding the base URL
    python -m loracompose.serve.loadtest --model M --modules D   (or `loracompose serve-bench`)

`clients` concurrent workers share `requests` completions; each request takes a
composition from `compositions` (None = the base) and a PPLM prompt, both drawn
by a seeded generator, and its own seed. Only loopback addresses are accepted.
The run is bounded in count and in time (`time_limit_s`; requests still open
then are cancelled and counted), so it always stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import statistics
import threading
import time
from ipaddress import ip_address
from urllib.parse import urlparse

from loracompose.errors import LoraComposeError


def _check_loopback(base_url: str) -> None:
    host = urlparse(base_url).hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoraComposeError(f"the load test only targets loopback addresses (127.0.0.0/8, ::1, localhost); "
                               f"got '{host}'")


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

    from loracompose.generate import PPLM_PROMPTS

    _check_loopback(base_url)
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


@contextlib.contextmanager
def serve_in_background(model_spec: str, modules_dir: str | None, quantize: str | None = None,
                        judge_service=None, **settings):
    """Load the model, serve it on a free loopback port in a thread, yield the base URL; stop on exit.

    settings: `ServeSettings` fields; judge_service: a `judging.JudgeService` (default: from settings.judges).
    """
    import uvicorn

    from loracompose.serve.app import create_app
    from loracompose.serve.engine import Engine
    from loracompose.serve.settings import ServeSettings

    config = ServeSettings(**{"host": "127.0.0.1", "port": 0, **settings})
    _check_loopback(f"http://{config.host}")
    engine = Engine.load(model_spec, modules_dir, config, quantize=quantize)
    app = create_app(engine, config.api_key, judge_service)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="loracompose-uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise LoraComposeError("the in-process server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{config.host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.state.scheduler.stop()
        sock.close()


def random_compositions(module_names: list[str], count: int = 8, seed: int = 0,
                        methods: tuple[str, ...] = ("output-sum",)) -> list[dict | None]:
    """`count` compositions over the modules: the base, single modules and random mixes."""
    rng = random.Random(seed)
    result: list[dict | None] = [None]
    while len(result) < count:
        chosen = rng.sample(module_names, rng.randint(1, len(module_names)))
        result.append({"modules": {n: round(rng.uniform(-1, 2), 2) for n in chosen}, "method": rng.choice(methods)})
    return result


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None):
    parser = parser or argparse.ArgumentParser(prog="python -m loracompose.serve.loadtest", description=__doc__)
    add_arguments(parser)
    return parser.parse_args(argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None, help="a running server (loopback); default: start one in-process")
    parser.add_argument("--model", default="smollm2-135m", help="in-process server: the base model")
    parser.add_argument("--modules", default=None, help="in-process server: the modules directory")
    parser.add_argument("--mix", choices=["mixed", "shared", "base"], default="mixed",
                        help="random compositions, one shared composition (of all modules), or the base only")
    parser.add_argument("--compositions", type=int, default=8, help="mixed: how many distinct compositions")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--max-batch-rows", type=int, default=16, help="in-process server: batch rows")
    parser.add_argument("--max-queue", type=int, default=64, help="in-process server: queue bound")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds; the run stops by then")
    parser.add_argument("--out", default=None, help="write the summary as JSON")


def compositions_for(mix: str, names: list[str], count: int, seed: int) -> list[dict | None]:
    if mix == "base" or not names:
        return [None]
    if mix == "shared":
        return [{"modules": {n: 1.0 for n in names}, "method": "output-sum"}]
    return random_compositions(names, count, seed)


def bench(args) -> dict:
    """Run the load test as the CLI asks: against --url, or a server started here."""
    import logging

    import httpx

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request

    def run(url: str) -> dict:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        listing = httpx.get(f"{url}/v1/models", headers=headers, timeout=30).json()["data"]
        names = [m["id"] for m in listing if m.get("kind") == "module"]
        return run_load_test(url, compositions_for(args.mix, names, args.compositions, args.seed), args.clients,
                             args.requests, args.max_tokens, args.api_key, args.seed, time_limit_s=args.time_limit)

    if args.url:
        summary = run(args.url)
    else:
        with serve_in_background(args.model, args.modules, api_key=args.api_key, judges="none",  # no judge load
                                 max_batch_rows=args.max_batch_rows, max_queue=args.max_queue,
                                 max_tokens_cap=max(256, args.max_tokens)) as url:
            summary = run(url)
    summary["mix"] = args.mix
    text = json.dumps(summary, indent=2)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")
    print(text)
    return summary


if __name__ == "__main__":
    bench(parse_args())
