"""`loracompose serve` and `loracompose serve-bench`."""

from __future__ import annotations

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
    settings = ServeSettings(host=args.host, port=args.port, api_key=api_key, max_batch_rows=args.max_batch_rows,
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


def cmd_serve_bench(args) -> None:
    from loracompose.serve.loadtest import bench

    bench(args)


def register(sub) -> None:
    serve = sub.add_parser("serve", help="OpenAI-compatible HTTP API with per-request composition, and a playground")
    serve.add_argument("--model", default="smollm2-135m", help="packaged name, local HF directory or hub id")
    serve.add_argument("--modules", default=None, help="directory of modules (requests name them)")
    serve.add_argument("--quantize", choices=["nf4", "none"], default="none", help="base weights (default dense)")
    serve.add_argument("--host", default=DEFAULTS.host, help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=DEFAULTS.port)
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' (default: $LORACOMPOSE_API_KEY, else none)")
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
    from loracompose.serve.loadtest import add_arguments

    add_arguments(bench)
    bench.set_defaults(func=cmd_serve_bench)
