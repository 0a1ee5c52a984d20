"""Decode-step latency of composing N modules: fused output-sum vs PEFT's multi-adapter forward.

Measured side by side in one process: for every repeat, each configuration runs
`steps` single-token decode steps (batch 1, KV cache, after a 16-token prefill)
in turn, so drift of the machine hits all of them alike. Reported: median and
interquartile range per configuration, and ratios to the single-module step.

    python -m benchmarks.decode_step --model smollm2-135m --quantize none --n 1,3,8
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def make_random_modules(model_dir: str, root: Path, n: int, rank: int = 8) -> dict[str, Path]:
    """n rank-r adapters on all linear projections, with random non-zero A and B (timing only)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    paths = {}
    for i in range(n):
        torch.manual_seed(i)
        peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear",
                                                      init_lora_weights=False))
        paths[f"m{i}"] = root / f"m{i}"
        peft_model.save_pretrained(paths[f"m{i}"])
        model = peft_model.unload()
    return paths


class Stepper:
    """Times single-token forwards of one model configuration."""

    def __init__(self, model, prefill: torch.Tensor, before=None):
        self.model, self.prefill, self.before = model, prefill, before

    @torch.no_grad()
    def run(self, steps: int) -> list[float]:
        if self.before:
            self.before()
        out = self.model(input_ids=self.prefill, use_cache=True)
        token = out.logits[:, -1:].argmax(-1)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            out = self.model(input_ids=token, cache=out.cache, use_cache=True)
            times.append(time.perf_counter() - start)
            token = out.logits[:, -1:].argmax(-1)
        return times


def measure(model_spec: str, quantize: str | None, ns: list[int], repeats: int = 5, steps: int = 8) -> dict:
    from peft import PeftModel

    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.models import load_base

    torch.manual_seed(0)
    prefill = torch.randint(100, 1000, (1, 16))
    configs: dict[str, Stepper] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bare = load_base(model_spec, quantize=quantize)
        paths = make_random_modules(str(bare.resolved.path), Path(tmp), max(ns))
        configs["base"] = Stepper(bare.model, prefill)
        for n in ns:
            subset = dict(list(paths.items())[:n])
            fused_base = load_base(model_spec, quantize=quantize)
            composed = ComposedModel(fused_base.model, ModuleBank(fused_base.model, subset, fused_base.fingerprint))
            composed.set_weights(torch.full((1, n), 1.0 / n))
            configs[f"fused-{n}"] = Stepper(composed.model, prefill)
            peft_base = load_base(model_spec, quantize=quantize).model
            names = list(subset)
            peft_model = PeftModel.from_pretrained(peft_base, str(subset[names[0]]), adapter_name=names[0])
            for name in names[1:]:
                peft_model.load_adapter(str(subset[name]), adapter_name=name)
            peft_model.base_model.set_adapter(names)
            configs[f"peft-{n}"] = Stepper(peft_model.eval(), prefill)
    samples: dict[str, list[float]] = {name: [] for name in configs}
    for stepper in configs.values():  # warm-up
        stepper.run(2)
    for _ in range(repeats):
        for name, stepper in configs.items():
            samples[name] += stepper.run(steps)
    result = {}
    for name, times in samples.items():
        q = statistics.quantiles(times, n=4)
        result[name] = {"median_ms": 1000 * statistics.median(times), "iqr_ms": 1000 * (q[2] - q[0]),
                        "n": len(times)}
    one = result[f"fused-{min(ns)}"]["median_ms"]
    for n in ns:
        result[f"fused-{n}"]["ratio_to_fused_1"] = result[f"fused-{n}"]["median_ms"] / one
        result[f"peft-{n}"]["ratio_peft_over_fused"] = result[f"peft-{n}"]["median_ms"] / result[f"fused-{n}"][
            "median_ms"]
    return {"model": model_spec, "quantize": quantize, "threads": torch.get_num_threads(), "results": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--quantize", choices=["nf4", "none"], default="none")
    parser.add_argument("--n", default="1,3,8")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    report = measure(args.model, None if args.quantize == "none" else args.quantize,
                     [int(n) for n in args.n.split(",")], args.repeats, args.steps)
    print(f"{'config':10} {'median ms':>10} {'IQR ms':>8}  ratio")
    for name, row in report["results"].items():
        ratio = row.get("ratio_to_fused_1") or row.get("ratio_peft_over_fused") or ""
        print(f"{name:10} {row['median_ms']:10.1f} {row['iqr_ms']:8.1f}  {ratio and f'{ratio:.2f}'}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
