"""`loracompose serve` and `loracompose serve-bench`."""

from __future__ import annotations

import json
import logging
import os

from loracompose.errors import LoraComposeError
from loracompose.serve.settings import ServeSettings

DEFAULTS = ServeSettings()  # the flags' defaults are the settings' own (tests/test_cli_defaults.py)


def cmd_serve(args) -> None:
    try:
        import uvicorn
    except ImportError:
        raise LoraComposeError("serving needs the 'serve' extra: pip install 'loracompose[serve]'") from None
    from loracompose.serve.app import create_app
    from loracompose.serve.engine import Engine

    api_key = args.api_key or os.environ.get("LORACOMPOSE_API_KEY") or None
    admin_key = args.admin_key or os.environ.get("LORACOMPOSE_ADMIN_KEY") or None
    settings = ServeSettings(host=args.host, port=args.port, api_key=api_key, admin_key=admin_key,
                             max_batch_rows=args.max_batch_rows,
                             max_queue=args.max_queue, batch_window_s=args.batch_window,
                             request_timeout_s=args.request_timeout, max_tokens_cap=args.max_tokens_cap,
                             default_max_tokens=min(args.default_max_tokens, args.max_tokens_cap),
                             max_prompt_tokens=args.max_prompt_tokens, max_n=args.max_n,
                             min_weight=args.min_weight, max_weight=args.max_weight, judges=args.judges,
                             allowed_hosts=tuple(args.allowed_host or ()))
    engine = Engine.load(args.model, args.modules, settings, quantize=None if args.quantize == "none" else "nf4")
    app = create_app(engine, api_key)
    where = f"http://{args.host}:{args.port}"
    print(f"serving {engine.model_name} with {len(engine.bank)} modules ({', '.join(engine.bank.names) or 'none'}) "
          f"at {where} (playground: {where}/){'; API key required' if api_key else ''}", flush=True)
    for name, message in engine.refused.items():
        print(f"not serving {name}: {message}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def cmd_serve_bench(args) -> dict:
    """Run the load test as the CLI asks: against --url, or a server started here."""
    import httpx

    from loracompose.serve.background import serve_in_background
    from loracompose.serve.loadtest import compositions_for, run_load_test

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


def add_bench_arguments(parser) -> None:
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


def register(sub) -> None:
    serve = sub.add_parser("serve", help="OpenAI-compatible HTTP API with per-request composition, and a playground")
    serve.add_argument("--model", default="smollm2-135m", help="packaged name, local HF directory or hub id")
    serve.add_argument("--modules", default=None, help="directory of modules (requests name them)")
    serve.add_argument("--quantize", choices=["nf4", "none"], default="none", help="base weights (default dense)")
    serve.add_argument("--host", default=DEFAULTS.host, help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=DEFAULTS.port)
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' (default: $LORACOMPOSE_API_KEY, else none)")
    serve.add_argument("--admin-key", default=None,
                       help="key of POST/DELETE /admin/modules (adding and removing modules without a restart; "
                            "default: $LORACOMPOSE_ADMIN_KEY, else the API key; with neither, they are off)")
    serve.add_argument("--allowed-host", action="append", metavar="NAME",
                       help="without an API key, also answer requests for this Host name (repeatable; default: "
                            "loopback and --host only, against DNS rebinding)")
    serve.add_argument("--max-batch-rows", type=int, default=DEFAULTS.max_batch_rows, help="forward rows per batch")
    serve.add_argument("--max-queue", type=int, default=DEFAULTS.max_queue, help="queued requests before 429")
    serve.add_argument("--batch-window", type=float, default=DEFAULTS.batch_window_s,
                       help="seconds to wait for a batch to fill")
    serve.add_argument("--request-timeout", type=float, default=DEFAULTS.request_timeout_s,
                       help="seconds before a request is cancelled")
    serve.add_argument("--max-tokens-cap", type=int, default=DEFAULTS.max_tokens_cap)
    serve.add_argument("--default-max-tokens", type=int, default=DEFAULTS.default_max_tokens)
    serve.add_argument("--max-prompt-tokens", type=int, default=DEFAULTS.max_prompt_tokens)
    serve.add_argument("--max-n", type=int, default=DEFAULTS.max_n, help="choices per request")
    serve.add_argument("--min-weight", type=float, default=DEFAULTS.min_weight)
    serve.add_argument("--max-weight", type=float, default=DEFAULTS.max_weight)
    serve.add_argument("--judges", default=DEFAULTS.judges,
                       help="playground scores: auto (the modules' attributes), none, or attributes, comma-separated")
    serve.set_defaults(func=cmd_serve)

    bench = sub.add_parser("serve-bench", help="load-test a server (started in-process unless --url)")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_serve_bench)
