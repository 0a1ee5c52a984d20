"""Figure: composition cost at the study's model shapes (Llama-3-8B, Llama-3.2-3B, Mistral-7B), random weights.

Per shape, on one device, in bfloat16, with N random rank-8 modules on every projection:

    base      the bare model
    fused-N   `ComposedModel` output-sum (every weight 1)
    peft-N    PEFT with the N adapters active (its Python loop over adapters per layer)
    merged-N  the model with W0 + Σ ΔW_i written into its weights (what merge_and_unload gives)

timed by `composition.time_configs` (decode-step latency and generation tokens/s,
runs interleaved, CUDA events on a GPU), and the mixed batch: 16 requests with 16
different compositions decoded as one batch vs one by one (`decoding.Decoder`,
prompts of random ids, EOS off), timed by `mixed_batch.compare`.

Memory: one copy of the weights. The PEFT model wraps a copy of the module tree
whose parameters are the same tensors; merged-N adds Σ ΔW_i into those weights
in place before its runs and subtracts it after (bf16 rounding leaves the weights
a few ulps off after each round trip — random weights either way, and no figure
here depends on their values).
"""

from __future__ import annotations

import copy
import gc
import time
from types import SimpleNamespace

import torch

from benchmarks.common import Settings
from benchmarks.composition import Config, time_configs
from benchmarks.mixed_batch import compare, compositions
from benchmarks.shapes import SHAPES, build, random_modules, peft_with, tiny


def _merge_into(model: torch.nn.Module, modules: list, sign: float) -> None:
    """W += sign · Σ_i s_i·B_i·A_i at every layer the modules adapt: one float32 product of the stacked
    pairs per layer, [B_1 … B_n] @ [s_1·A_1; …; s_n·A_n], added in W's dtype."""
    from loracompose.models import linear_layers

    layers = linear_layers(model)
    with torch.no_grad():
        for name in modules[0].layers:
            weight = layers[name].weight
            B = torch.cat([m.layers[name].B.float() for m in modules], dim=1)  # (d_out, Σ r)
            A = torch.cat([sign * m.layers[name].scale * m.layers[name].A.float() for m in modules])  # (Σ r, d_in)
            weight.add_((B @ A).to(weight.dtype))


def _configs(model: torch.nn.Module, peft_model, modules: list, ns: tuple[int, ...], dtype: torch.dtype):
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel

    configs = [Config("base", lambda: model)]
    active: dict[str, ComposedModel] = {}

    def attach(n: int):
        def setup():
            active["fused"] = ComposedModel(model, ModuleBank.from_loaded(modules[:n]), dtype=dtype)
            active["fused"].set_weights(torch.ones(1, n))
        return setup

    for n in ns:
        configs.append(Config(f"fused-{n}", lambda: model, attach(n), lambda: active.pop("fused").detach()))
    names = [m.name for m in modules]
    for n in ns:
        configs.append(Config(f"peft-{n}", lambda: peft_model, lambda n=n: peft_model.base_model.set_adapter(names[:n])))
    for n in ns:
        configs.append(Config(f"merged-{n}", lambda: model, lambda n=n: _merge_into(model, modules[:n], 1.0),
                              lambda n=n: _merge_into(model, modules[:n], -1.0)))
    return configs


def _mixed(model: torch.nn.Module, modules: list, settings: Settings, device: str, dtype: torch.dtype) -> dict:
    """16 compositions in one batch vs 16 single-sequence decodes, through the project's Decoder."""
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.decoding import Decoder, SamplingConfig, Sequence, row_seed

    composed = ComposedModel(model, ModuleBank.from_loaded(modules), dtype=dtype)
    count = settings.mixed_requests
    comps = compositions(composed.bank.names, count)
    weights = composed.weights_for(comps)
    generator = torch.Generator().manual_seed(0)
    vocab = min(model.config.vocab_size, 1000)
    prompts = [torch.randint(100, vocab, (settings.prefill - i % 4,), generator=generator).tolist()
               for i in range(count)]  # lengths differ: left padding as in real batches
    config = SamplingConfig(max_new_tokens=settings.new_tokens, batch_size=count)
    tokens = SimpleNamespace(eos_token_id=-1, pad_token_id=0)  # EOS off: every request makes new_tokens tokens

    def decode(rows: list[int]) -> list[list[int]]:
        sequences = [Sequence(prompts[i], row_seed(0, i), config, weights[i : i + 1]) for i in rows]
        Decoder(composed, tokens, sequences, last_logits_only=True).run()
        return [s.tokens for s in sequences]

    def batched():
        return decode(list(range(count)))

    def separate():
        return [decode([i])[0] for i in range(count)]

    measured = compare(batched, separate, count * settings.new_tokens, settings.repeats, device)
    composed.detach()
    measured["same_tokens"] = measured.pop("same_texts")  # bf16: a batch of 16 may round differently
    return {"setting": {"requests": count, "new_tokens": settings.new_tokens, "repeats": settings.repeats,
                        "modules_in_bank": len(modules), "compositions": comps,
                        "sampling": "top-k 50, top-p 0.95, T 1, per-request seeds; EOS off"}, **measured}


@torch.no_grad()
def same_work(model: torch.nn.Module, peft_model, modules: list, dtype: torch.dtype) -> dict:
    """fused-N and peft-N logits for one prompt (N = all modules): the timed sides compute the same thing.

    Recorded, not judged: at 8B shapes bf16 differences grow with depth (see cuda_checks for the tolerance).
    """
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel

    ids = torch.arange(100, 116, device=next(model.parameters()).device)[None]
    peft_model.base_model.set_adapter([m.name for m in modules])
    expected = peft_model(input_ids=ids).logits.float()
    composed = ComposedModel(model, ModuleBank.from_loaded(modules), dtype=dtype)
    composed.set_weights(torch.ones(1, len(modules)))
    got = model(input_ids=ids).logits.float()
    composed.detach()
    bare = model(input_ids=ids).logits.float()
    return {"modules": len(modules), "max_abs_difference": float((got - expected).abs().max()),
            "logit_scale": float(expected.abs().max()), "module_effect": float((expected - bare).abs().max())}


def measure_shape(name: str, shape: dict, settings: Settings, device: str, dtype: torch.dtype) -> dict:
    started = time.perf_counter()
    model = build(shape, device, dtype)
    modules = random_modules(model, max(settings.ns))
    shared = {id(p): p for p in model.parameters()}  # deepcopy keeps these: one copy of the weights in memory
    peft_model = peft_with(copy.deepcopy(model, memo=shared), modules)
    built = time.perf_counter() - started
    vocab = (100, min(model.config.vocab_size, 1000))
    decode = time_configs(_configs(model, peft_model, modules, settings.ns, dtype), settings, device, vocab)
    mixed = _mixed(model, modules, settings, device, dtype)
    agreement = same_work(model, peft_model, modules, dtype)
    parameters = sum(p.numel() for p in model.parameters())
    record = {"parameters": parameters, "config": {k: v for k, v in shape.items()}, "dtype": str(dtype),
              "build_seconds": round(built, 1), "bf16": decode, "mixed_batch": mixed,
              "fused_vs_peft": agreement,
              "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)
              if torch.device(device).type == "cuda" else None}
    del model, peft_model, modules
    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return record


def run(settings: Settings, device: str, dry_run: bool, deadline: float | None = None) -> dict:
    """Every shape (tiny versions on a dry run) until `deadline` (a time.perf_counter() value) is near.

    A shape is started only if the time left exceeds the longest shape so far, so the
    run ends inside its budget; a shape left out is recorded as skipped, with why.
    """
    dtype = torch.bfloat16
    report = {"setting": {"device": device, "dtype": str(dtype), "prefill_tokens": settings.prefill,
                          "steps_per_run": settings.steps, "repeats": settings.repeats,
                          "decode_batch": list(settings.decode_batch), "ns": list(settings.ns),
                          "weights": "random; every module weight 1 (output-sum)", "kv_cache": True,
                          "sampling": "greedy", "dry_run": dry_run,
                          "modules": "random in-memory LoRA, rank 8, alpha 16, q/k/v/o/gate/up/down of every "
                                     "block; PEFT adapters hold the same A and B in the model dtype"},
              "shapes": {}}
    longest = 0.0
    for name, shape in SHAPES.items():
        if deadline is not None and deadline - time.perf_counter() < longest:
            report["shapes"][name] = {"skipped": f"time budget: {deadline - time.perf_counter():.0f} s left, the "
                                                 f"longest shape so far took {longest:.0f} s"}
            continue
        started = time.perf_counter()
        report["shapes"][name] = measure_shape(name, tiny(shape) if dry_run else shape, settings, device, dtype)
        took = time.perf_counter() - started
        report["shapes"][name]["seconds"] = round(took, 1)
        longest = max(longest, took)
    return report
