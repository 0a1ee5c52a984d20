"""Profiles behind the figures: where a decode step and a training step spend their time.

    flock /tmp/loracompose-cpu.lock python -m benchmarks.profiles decode --batch 1 --out decode.txt
    flock /tmp/loracompose-cpu.lock python -m benchmarks.profiles train --data tweets --out train.txt

    flock /tmp/loracompose-cpu.lock python -m benchmarks.profiles compile --batch 1

`decode`: torch.profiler over `steps` decode steps of the bare base, fused
output-sum with 1 and 8 modules and PEFT with 8 active adapters (dense float
base); per configuration the total, the number of operator calls per step and
the operators by self CPU time. `train`: the same over a few optimiser steps of
the project's training (its Trainer, packed rows) and of the reference recipe.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.common import Settings, prepare_modules


def _table(prof, rows: int) -> str:
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def _calls(prof) -> int:
    return sum(e.count for e in prof.key_averages() if not e.key.startswith("ProfilerStep"))


def decode(model_spec: str, batch: int, steps: int, rows: int) -> str:
    from peft import PeftModel

    from benchmarks.composition import time_run
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.models import load_base, resolve_model

    settings = Settings(model=model_spec, quick=False, ns=(8,))
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        paths, _ = prepare_modules(settings, str(resolve_model(model_spec).path), Path(tmp))
        shared = load_base(model_spec, quantize=None)
        bank = ModuleBank(shared.model, paths, shared.fingerprint)
        names = bank.names
        peft = PeftModel.from_pretrained(load_base(model_spec, quantize=None).model, str(paths[names[0]]),
                                         adapter_name=names[0])
        for name in names[1:]:
            peft.load_adapter(str(paths[name]), adapter_name=name)
        peft.base_model.set_adapter(names)
        peft.eval()
        prefill = torch.randint(100, 1000, (batch, 16))
        configs = {"base": (shared.model, None), "fused-1": (shared.model, 1), "fused-8": (shared.model, 8),
                   "peft-8": (peft, None)}
        for name, (model, n) in configs.items():
            composed = None
            if n:
                composed = ComposedModel(shared.model, ModuleBank.from_loaded(bank.modules[:n]))
                composed.set_weights(torch.ones(1, n))
            time_run(model, prefill, 2)  # warm-up
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                _, times = time_run(model, prefill, steps)
            if composed:
                composed.detach()
            per_step = sum(times) / steps * 1000
            out.append(f"== {name}: batch {batch}, {per_step:.1f} ms/step under the profiler, "
                       f"{_calls(prof) / (steps + 1):.0f} operator calls per forward\n{_table(prof, rows)}")
    return "\n".join(out)


def compiled(model_spec: str, batch: int, steps: int, repeats: int = 3) -> str:
    """Decode step of the fused 8-module model, eager against `torch.compile` (Inductor), interleaved."""
    import statistics
    import time

    from benchmarks.composition import time_run
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.models import load_base, resolve_model

    settings = Settings(model=model_spec, quick=False, ns=(8,))
    with tempfile.TemporaryDirectory() as tmp:
        paths, _ = prepare_modules(settings, str(resolve_model(model_spec).path), Path(tmp))
        base = load_base(model_spec, quantize=None)
        composed = ComposedModel(base.model, ModuleBank(base.model, paths, base.fingerprint))
    composed.set_weights(torch.ones(1, 8))
    prefill = torch.randint(100, 1000, (batch, 16))
    started = time.perf_counter()
    fast = torch.compile(base.model)
    time_run(fast, prefill, 3)  # compiles prefill and decode graphs
    compile_s = time.perf_counter() - started
    time_run(base.model, prefill, 2)
    eager, comp = [], []
    for repeat in range(repeats):
        runs = [(base.model, eager), (fast, comp)]
        for model, times in runs if repeat % 2 == 0 else reversed(runs):  # order reversed every other round
            times += time_run(model, prefill, steps)[1]
    e, c = statistics.median(eager) * 1000, statistics.median(comp) * 1000
    return (f"fused 8 modules, batch {batch}: eager {e:.1f} ms/step, torch.compile {c:.1f} ms/step "
            f"(compiled ÷ eager {c / e:.2f}; {len(eager)} steps each), compiling took {compile_s:.0f} s")


def train(model_spec: str, dataset: str, steps: int, rows: int) -> str:
    """Profile optimiser steps 2..steps of the project's and the reference's training (one process each)."""
    import json
    import subprocess
    import sys

    from benchmarks.common import REPO

    out = []
    for method in ("project", "reference"):
        job = {"model": model_spec, "dataset": dataset, "method": method, "steps": steps, "profile_rows": rows}
        proc = subprocess.run([sys.executable, "-m", "benchmarks.profiles", "train-child", json.dumps(job)],
                              cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        out.append(f"== {method} ({dataset})\n{proc.stdout}")
    return "\n".join(out)


def train_child(job: dict) -> str:
    """Run benchmarks.training's child with torch.profiler around optimiser steps after the first."""
    from transformers import TrainerCallback

    import benchmarks.training as training

    holder = {}

    class Profiled(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                holder["prof"] = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
                holder["prof"].__enter__()

        def on_train_end(self, args, state, control, **kwargs):
            if "prof" in holder:
                holder["prof"].__exit__(None, None, None)

    make_timer = training._timer
    training._timer = lambda: _Both(make_timer(), Profiled())
    result = training.child(job)
    prof = holder["prof"]
    return (f"{result['timed_steps']} steps, {result['real_tokens_per_s']:.0f} real tokens/s, peak "
            f"{result['peak_memory_mb']:.0f} MB\n{prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=job['profile_rows'])}")


class _Both:
    """Two trainer callbacks as one (the step timer and the profiler)."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __getattr__(self, name):
        if name.startswith("on_"):
            def both(*args, **kwargs):
                getattr(self.first, name)(*args, **kwargs)
                getattr(self.second, name)(*args, **kwargs)
            return both
        return getattr(self.first, name)


def main() -> None:
    import json
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "train-child":
        print(train_child(json.loads(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["decode", "train", "compile"])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--data", default="tweets")
    parser.add_argument("--rows", type=int, default=15)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.what == "compile":
        text = compiled(args.model, args.batch, args.steps)
    else:
        text = decode(args.model, args.batch, args.steps, args.rows) if args.what == "decode" else \
            train(args.model, args.data, args.steps, args.rows)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
