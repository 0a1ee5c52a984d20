"""The performance harness: every figure side by side, as ratios to its reference, into bench.json + a table.

    python -m benchmarks.run --quick --out bench.json             # CI smoke run on a tiny random model (< 2 min)
    flock /tmp/loracompose-cpu.lock python -m benchmarks.run --out bench.json
    python -m benchmarks.run --only composition,mixed_batch --out bench.json --merge

Figures (one module each): composition (decode step and generation tokens/s for
N modules: fused output-sum, PEFT, merged, bare base), mixed_batch (16
compositions in one batch vs 16 generations), training (packed project step vs
a plain Trainer + PEFT + bitsandbytes reference), serving (loopback load, when
`loracompose.serve` exists), evaluation (judges and perplexity texts/s); and,
only when named in --only, floor (issue 15: a 64-module bank with 3 active
against a 3-module bank, fused-8 and PEFT-8 against the bare base, the sampling
loop's tokens/s against the bare model step).
`--merge` keeps the figures of an existing --out that this run does not measure,
so a full run can be split into several shorter locked runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from benchmarks import targets
from benchmarks.common import Settings, machine_info, write_json
from benchmarks.table import render
from loracompose.testing import build_tiny_model

FIGURES = ["composition", "mixed_batch", "training", "serving", "evaluation"]
OPTIONAL = ["floor"]  # run when named in --only: issue 15's floor (large bank, fused ÷ base, the decode loop)
QUICK = dict(ns=(1, 2, 8), decode_batch=(1, 4), repeats=2, steps=3, prefill=8, new_tokens=4,
             train_steps=3, train_datasets=("tweets",), eval_texts=16,  # IMDb's 10k long texts: ~15 s to tokenize
             bank=12, loop_tokens=6)


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run on a tiny random llama, few repeats")
    parser.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON results (default bench.json)")
    parser.add_argument("--table", type=Path, help="Markdown table (default: --out with .md)")
    parser.add_argument("--only", default=",".join(FIGURES), help=f"figures to run, of {','.join(FIGURES + OPTIONAL)}")
    parser.add_argument("--merge", action="store_true", help="keep the other figures of an existing --out")
    parser.add_argument("--model", help="model spec (default smollm2-135m; --quick: a tiny random llama)")
    parser.add_argument("--modules", help="directory of real modules (default: the smollm2-135m starter modules)")
    parser.add_argument("--quantize", help="decode-step bases, of none,nf4 (default both)")
    parser.add_argument("--n", help="module counts N (default 1,2,3,5,8)")
    parser.add_argument("--decode-batch", help="sequences per decode step (default 1,8)")
    parser.add_argument("--repeats", type=int, help="timed runs per configuration (default 5)")
    parser.add_argument("--steps", type=int, help="decode steps per run (default 8)")
    parser.add_argument("--new-tokens", type=int, help="mixed batch: tokens per request (default 16)")
    parser.add_argument("--train-steps", type=int, help="training: steps per run, the first untimed (default 6)")
    parser.add_argument("--bank", type=int, help="floor: modules in the large bank, 3 active (default 64)")
    parser.add_argument("--loop-tokens", type=int, help="floor: tokens the sampling loop makes (default 64)")
    parser.add_argument("--train-data", help="training datasets (default tweets,imdb)")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(FIGURES + OPTIONAL)
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; figures: {', '.join(FIGURES + OPTIONAL)}")
    if args.quantize and set(args.quantize.split(",")) - {"none", "nf4"}:
        parser.error(f"--quantize takes none and/or nf4, got {args.quantize}")
    return args


def settings_from(args: argparse.Namespace, model: str) -> Settings:
    values = dict(QUICK) if args.quick else {}
    overrides = {"quantize": args.quantize and tuple(args.quantize.split(",")), "ns": args.n and _ints(args.n),
                 "decode_batch": args.decode_batch and _ints(args.decode_batch), "repeats": args.repeats,
                 "steps": args.steps, "new_tokens": args.new_tokens, "train_steps": args.train_steps,
                 "train_datasets": args.train_data and tuple(args.train_data.split(",")),
                 "modules_dir": args.modules, "bank": args.bank, "loop_tokens": args.loop_tokens}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(model=model, quick=args.quick, **values)


def run_figures(settings: Settings, only: list[str]) -> dict:
    from loracompose.models import resolve_model

    model_dir = str(resolve_model(settings.model).path)
    figures = {}
    for name in only:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            figure = importlib.import_module(f"benchmarks.{name}").run(settings, model_dir)
        except Exception as exc:  # one broken figure must not lose the others' measurements
            traceback.print_exc()
            figure = {"failed": f"{type(exc).__name__}: {exc}"}
        figure["seconds"] = round(time.perf_counter() - started, 1)
        print(f"[bench] {name} done in {figure['seconds']} s", file=sys.stderr, flush=True)
        figures[name] = figure
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight-loading bars, once per model load
    hf_logging.set_verbosity_error()
    only = [f for f in FIGURES + OPTIONAL if f in args.only.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or (str(build_tiny_model(Path(tmp) / "tiny-llama")) if args.quick else "smollm2-135m")
        settings = settings_from(args, model)
        meta = machine_info()
        figures = run_figures(settings, only)
    for figure in figures.values():
        figure["measured"] = {"date": meta["date"], "git_commit": meta["git_commit"], "command": meta["command"]}
    if args.merge and args.out.is_file():
        previous = json.loads(args.out.read_text())
        merged = previous.get("figures", {})
        for name, figure in figures.items():  # per figure, keep parts not re-measured (e.g. the NF4 base)
            merged[name] = {**merged.get(name, {}), **figure} if "failed" not in figure else figure
        figures = merged
    bench = {"meta": meta, "settings": {**dataclasses.asdict(settings), "model": "tiny random llama (quick)"
                                        if args.quick and not args.model else settings.model},
             "figures": {name: figures[name] for name in FIGURES + OPTIONAL if name in figures}}
    bench["targets"] = targets.check(bench["figures"])
    write_json(args.out, bench)
    table = args.table or args.out.with_suffix(".md")
    table.write_text(render(bench))
    print(render(bench))
    failed = [name for name, figure in figures.items() if "failed" in figure]
    if failed:
        print(f"[bench] failed figures: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
