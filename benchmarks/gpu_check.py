"""The GPU check: the CUDA correctness checks, then the study-shape benchmark, in one budgeted run.

    python -m benchmarks.gpu_check --out gpu-check/              # on a GPU (about 5 of at most 8 minutes)
    python -m benchmarks.gpu_check --dry-run --out /tmp/dry/     # the same code on CPU, tiny shapes (< 1 min)

Parts, each timed and printed:
  0 shapes   the study's configs built on the `meta` device: parameter counts against the published ones
  1 checks   benchmarks/cuda_checks.py on the device (bf16 output-sum vs PEFT, mixed batch, export,
             one QLoRA training step)
  2 bench    benchmarks/study_shapes.py: decode step for base / fused-N / peft-N / merged-N at
             N = 1, 3, 8 and batch 1, 8, 64, and the 16-composition mixed batch, per model shape

Writes <out>/bench.json (the harness's format: meta, settings, figures, targets, plus
`checks` and `parts`) and <out>/bench.md. Exit status 0 only if every check passed and
every shape's parameter count matched; the benchmark's timings are reported, not judged.
Needs torch, transformers, PEFT and accelerate; bitsandbytes is used where present.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import targets
from benchmarks.common import Settings, machine_info, write_json
from benchmarks.table import _table, render

BUDGET_S = 480  # the limit for the whole run on one GPU
GPU = dict(ns=(1, 3, 8), decode_batch=(1, 8, 64), repeats=3, steps=8, prefill=16, mixed_requests=16, new_tokens=16)
# The dry run proves the code runs and writes every row, not speed: one repeat of two steps keeps
# it (and tests/test_gpu_check.py) well under a minute on a small shared CPU.
DRY = dict(GPU, repeats=1, steps=2, prefill=6, new_tokens=2)
STARTUP_S = 20  # interpreter start and the torch/transformers imports, before main() reads the clock


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, few repeats (CI)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for bench.json and bench.md")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help=f"seconds for the whole run (default {BUDGET_S}); shapes that would not fit are skipped")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device is visible to torch (torch.cuda.is_available() is False); run on a GPU "
                     "machine with a CUDA build of torch, or pass --dry-run for the CPU run")
    if not args.budget > 0:
        parser.error(f"--budget must be a positive number of seconds; got {args.budget}")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    return args


def _part(name: str, started: float, parts: dict) -> None:
    parts[name] = round(time.perf_counter() - started, 1)
    print(f"[gpu-check] part {name}: {parts[name]} s", file=sys.stderr, flush=True)


def _checks_table(shapes: dict, checks: list[dict]) -> list[str]:
    rows = [[f"shape {n}", f"{s['parameters']:,} parameters (published {s['published']:,})", "",
             "✔" if s["matches"] else "✘"] for n, s in shapes.items()]
    for c in checks:
        if "tolerance" in c:
            detail = (f"largest logit difference {c['max_abs_difference']:.4f} ({c['difference_in_units']:.1f}u × "
                      f"largest logit), the modules move logits by {c['module_effect']:.2f}")
            bound = f"≤ {c['tolerance']:.4f}"
        else:
            detail, bound = f"{c['kind']} step, losses {', '.join(f'{v:.3f}' for v in c['losses'])}", c["why"]
        rows.append([f"{c['check']} ({c['device']})", detail, bound, "✔" if c["passed"] else "✘"])
    return ["", "Checks:", ""] + _table(["check", "measured", "needed", ""], rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    from benchmarks import cuda_checks, study_shapes
    from benchmarks.shapes import check_shapes

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    start = time.perf_counter()
    device = "cpu" if args.dry_run else "cuda"
    settings = Settings(model="study shapes (tiny, dry run)" if args.dry_run else "study shapes, random bf16 weights",
                        quick=args.dry_run, quantize=(), **(DRY if args.dry_run else GPU))
    parts: dict[str, float] = {}
    meta = machine_info()
    meta["git_commit"] = meta["git_commit"] or os.environ.get("GIT_COMMIT")  # a copy without .git: say it
    meta["command"] = " ".join([Path(sys.executable).name, "-m", "benchmarks.gpu_check", *(argv or sys.argv[1:])])

    started = time.perf_counter()
    shapes = check_shapes()
    _part("0 shapes", started, parts)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        checks = cuda_checks.run_all(device, Path(scratch))
    _part("1 checks", started, parts)
    started = time.perf_counter()
    figure = study_shapes.run(settings, device, args.dry_run, deadline=start + args.budget - STARTUP_S)
    _part("2 bench", started, parts)
    parts["total"] = round(time.perf_counter() - start, 1)

    figure["measured"] = {"date": meta["date"], "git_commit": meta["git_commit"], "command": meta["command"]}
    bench = {"meta": meta, "settings": dataclasses.asdict(settings), "figures": {"study_shapes": figure},
             "checks": checks, "shapes": shapes, "parts_seconds": parts}
    bench["targets"] = targets.check(bench["figures"])
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "bench.json", bench)
    text = render(bench) + "\n".join(_checks_table(shapes, checks)) + "\n" + \
        f"\nParts (s): {', '.join(f'{k} {v}' for k, v in parts.items())}\n"
    (args.out / "bench.md").write_text(text)
    print(text)
    failed = [c["check"] for c in checks if not c["passed"]] + [n for n, s in shapes.items() if not s["matches"]]
    if failed:
        print(f"[gpu-check] FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"[gpu-check] all checks passed; {parts['total']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
