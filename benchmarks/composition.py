"""Figure 1 — composition overhead: decode-step latency and generation tokens/s for N modules.

Four ways to run a base with N modules, on the same base (dense float32 and NF4):

    base      the bare base model (no module at all)
    fused-N   `ComposedModel` output-sum: per layer y = W0·x + ((x·A_catᵀ) ⊙ c)·B_catᵀ
    peft-N    PEFT's own forward with the N adapters active (a Python loop over adapters per layer)
    merged-N  delta-sum merged into the base weights (W0 + Σ ΔW_i; PEFT's merge_and_unload)

One run of a configuration = a prefill of `prefill` random tokens for a batch of
`batch` sequences, then `steps` single-token decode steps with the KV cache
(greedy, so nothing random is timed). Runs of all configurations are interleaved
(order reversed on every repeat), so machine drift hits them alike. Reported per
configuration: the decode-step latency (median, IQR, min, max over all steps of
all repeats) and generation tokens/s (batch·steps / (prefill + steps), per run).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmarks.common import Settings, prepare_modules, ratio, summary
from benchmarks.timing import Stopwatch


@dataclass
class Config:
    """A model to time, with what must happen before and after each of its runs."""

    name: str
    model: Callable[[], torch.nn.Module]
    setup: Callable[[], None] = lambda: None
    teardown: Callable[[], None] = lambda: None


@torch.no_grad()
def time_run(model: torch.nn.Module, prefill: torch.Tensor, steps: int) -> tuple[float, list[float]]:
    """(prefill seconds, per-step seconds) of one greedy generation with the KV cache.

    Timed with a `Stopwatch` on the prompt's device (CUDA events on a GPU).
    """
    watch = Stopwatch(prefill.device)
    watch.start()
    out = model(input_ids=prefill, use_cache=True)
    prefill_s = watch.stop()
    token = out.logits[:, -1:].argmax(-1)
    times = []
    for _ in range(steps):
        watch.start()
        out = model(input_ids=token, cache=out.cache, use_cache=True)
        token = out.logits[:, -1:].argmax(-1)
        times.append(watch.stop())
    return prefill_s, times


def _merged_model(model_spec: str, quantize: str | None, bank, names: list[str], layer_order: list[str],
                  scratch: Path, fingerprint: dict) -> torch.nn.Module:
    """A fresh base with Σ ΔW_i of `names` (delta-sum, weights 1) merged into its weights by PEFT."""
    from peft import PeftModel

    from loracompose.compose.export import write_adapter
    from loracompose.compose.merge import merge_composition
    from loracompose.models import load_base

    pairs = merge_composition(bank, {n: 1.0 for n in names}, "delta-sum", layer_order)
    out = write_adapter(pairs, scratch / f"delta-sum-{len(names)}-{quantize}", base_model_name=model_spec,
                        metadata={"name": "merged", "base": fingerprint}, overwrite=True)
    base = load_base(model_spec, quantize=quantize).model
    return PeftModel.from_pretrained(base, str(out)).merge_and_unload().eval()


def _configs(model_spec: str, quantize: str | None, paths: dict[str, Path], ns: tuple[int, ...],
             scratch: Path) -> list[Config]:
    from peft import PeftModel

    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.models import linear_layers, load_base

    shared = load_base(model_spec, quantize=quantize)  # the bare base, and the fused layers' host
    bank = ModuleBank(shared.model, paths, shared.fingerprint)
    names = bank.names
    configs = [Config("base", lambda: shared.model)]
    composed: dict[str, ComposedModel] = {}

    def attach(n: int) -> Callable[[], None]:
        def setup():
            fused = ComposedModel(shared.model, ModuleBank.from_loaded(bank.modules[:n]))
            fused.set_weights(torch.ones(1, n))  # output-sum, every weight 1
            composed["active"] = fused
        return setup

    def detach() -> None:
        composed.pop("active").detach()

    for n in ns:
        configs.append(Config(f"fused-{n}", lambda: shared.model, attach(n), detach))

    peft_model = PeftModel.from_pretrained(load_base(model_spec, quantize=quantize).model, str(paths[names[0]]),
                                           adapter_name=names[0])
    for name in names[1:max(ns)]:
        peft_model.load_adapter(str(paths[name]), adapter_name=name)
    peft_model.eval()
    for n in ns:
        configs.append(Config(f"peft-{n}", lambda: peft_model,
                              lambda n=n: peft_model.base_model.set_adapter(names[:n])))

    layer_order = list(linear_layers(shared.model))
    for n in ns:
        merged = _merged_model(model_spec, quantize, bank, names[:n], layer_order, scratch, shared.fingerprint)
        configs.append(Config(f"merged-{n}", lambda merged=merged: merged))
    return configs


def measure_base(model_spec: str, quantize: str | None, paths: dict[str, Path], settings: Settings,
                 scratch: Path) -> dict:
    """Every configuration at every decode batch size on one base (float or NF4)."""
    return time_configs(_configs(model_spec, quantize, paths, settings.ns, scratch), settings)


def interleave(configs: list[Config], prefill: torch.Tensor, repeats: int, steps: int
               ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(per-step seconds, per-run generation tokens/s) of each config, by name: one warm-up run each, then
    `repeats` rounds of one run per config, the order reversed on every other round (drift hits all alike)."""
    step_s: dict[str, list[float]] = {c.name: [] for c in configs}
    gen: dict[str, list[float]] = {c.name: [] for c in configs}
    for config in configs:  # warm-up: first-call allocations, lazy initialisation
        config.setup()
        time_run(config.model(), prefill, 2)
        config.teardown()
    for repeat in range(repeats):
        for config in configs if repeat % 2 == 0 else reversed(configs):
            config.setup()
            prefill_s, times = time_run(config.model(), prefill, steps)
            config.teardown()
            step_s[config.name] += times
            gen[config.name].append(prefill.shape[0] * steps / (prefill_s + sum(times)))
    return step_s, gen


def time_configs(configs: list[Config], settings: Settings, device: torch.device | str = "cpu",
                 vocab: tuple[int, int] = (100, 1000)) -> dict:
    """Decode-step and generation timings of `configs` (base, fused-N, peft-N, merged-N for N in
    settings.ns), interleaved, at every decode batch size; prompts are random ids in `vocab` on `device`."""
    results = {}
    for batch in settings.decode_batch:
        torch.manual_seed(0)
        prefill = torch.randint(*vocab, (batch, settings.prefill)).to(device)
        steps, gen = interleave(configs, prefill, settings.repeats, settings.steps)
        rows = {name: {"step_ms": summary(steps[name], 1000), "tokens_per_s": summary(gen[name])}
                for name in steps}
        ratios = {}
        for n in settings.ns:
            fused, peft, merged = rows[f"fused-{n}"], rows[f"peft-{n}"], rows[f"merged-{n}"]
            ratios[str(n)] = {
                "fused_over_fused_1": ratio(fused["step_ms"], rows[f"fused-{min(settings.ns)}"]["step_ms"]),
                "peft_over_fused": ratio(peft["step_ms"], fused["step_ms"]),
                "fused_over_merged": ratio(fused["step_ms"], merged["step_ms"]),
                "fused_over_base": ratio(fused["step_ms"], rows["base"]["step_ms"]),
                "peft_over_base": ratio(peft["step_ms"], rows["base"]["step_ms"]),
                "merged_over_base": ratio(merged["step_ms"], rows["base"]["step_ms"]),
            }
        results[f"batch_{batch}"] = {"batch": batch, "configs": rows, "ratios": ratios}
    return results


def run(settings: Settings, model_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths, modules = prepare_modules(settings, model_dir, Path(tmp))
        report = {"setting": {"prefill_tokens": settings.prefill, "steps_per_run": settings.steps,
                              "repeats": settings.repeats, "decode_batch": list(settings.decode_batch),
                              "ns": list(settings.ns), "weights": "every module weight 1 (output-sum)",
                              "kv_cache": True, "sampling": "greedy"},
                  "modules": modules}
        for quantize in settings.quantize:
            report[quantize] = measure_base(settings.model, None if quantize == "none" else quantize, paths,
                                            settings, Path(tmp))
    return report
