"""Figure — issue 15's floor: cost ∝ active modules, fused ÷ bare base, PEFT ÷ fused, the decode loop's overhead.

Decode steps (dense float32 base, batch `floor_batch`, the KV cache, greedy; runs
interleaved and reversed on every repeat as in `composition.time_configs`):

    base       the bare base
    fused-3    `ComposedModel` over a bank of 3 modules, every weight 1
    bank-3     `ComposedModel` over a bank of `bank` modules (the same 3 first, then random
               in-memory modules of the same rank and targets), the 3 at weight 1, the rest 0
    fused-8    8 modules, every weight 1
    fused-8-separate   the same with one A matmul per layer (`fused.SHARED_INPUT` empty): what
               one A matmul for q/k/v and one for gate/up saves
    peft-8     PEFT's forward with the 8 adapters active

Ratios: bank-3 ÷ fused-3 (a large bank costs what its active modules cost),
fused-8 ÷ base, PEFT-8 ÷ fused-8, fused-8-separate ÷ fused-8.

Decode loop: `decoding.Decoder` sampling `loop_tokens` tokens at batch 1 (top-k 50,
top-p 0.95, T = 1, its own generator; EOS off so every run makes the same number of
tokens) on the bare base, against the bare model step (`time_run`, same prompt)
in the same repeats. Loop tokens/s counts the tokens after the first (whose step is
the prefill) over their steps' time; `loop_over_step_bound` = loop tokens/s × bare
step seconds, which is ≥ 0.9 when the loop's own work (sampling, warpers, mask and
bookkeeping) adds ≤ 10 % to a step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks.common import Settings, prepare_modules, ratio, summary
from benchmarks.composition import Config, interleave, time_run
from benchmarks.timing import Stopwatch


def random_modules(model: torch.nn.Module, like, count: int, seed: int) -> list:
    """`count` in-memory modules with `like`'s layers, ranks and scales; A ~ N(0, 1/d_in), B ~ N(0, 0.02²)."""
    from loracompose.compose.bank import LoadedModule, LoraPair
    from loracompose.modules import ModuleInfo

    generator = torch.Generator().manual_seed(seed)
    modules = []
    for i in range(count):
        layers = {}
        for name, pair in like.layers.items():
            rank, d_in = pair.A.shape
            A = torch.randn(rank, d_in, generator=generator) / d_in ** 0.5
            B = torch.randn(pair.B.shape[0], rank, generator=generator) * 0.02
            layers[name] = LoraPair(A, B, pair.scale)
        info = ModuleInfo(path=None, name=f"bank-{i}", adapter_config=dict(like.info.adapter_config), metadata={})
        modules.append(LoadedModule(info, layers))
    return modules


def _step_configs(model_spec: str, paths: dict[str, Path], bank_size: int) -> list[Config]:
    from peft import PeftModel

    from loracompose.compose import fused
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.models import load_base

    shared = load_base(model_spec, quantize=None)
    bank = ModuleBank(shared.model, paths, shared.fingerprint)
    names = bank.names
    big = ModuleBank.from_loaded(bank.modules[:3] + random_modules(shared.model, bank.modules[0], bank_size - 3, 7))
    composed: dict[str, ComposedModel] = {}

    def attach(modules: ModuleBank, weights: torch.Tensor, shared_input: tuple = fused.SHARED_INPUT):
        def setup():
            saved, fused.SHARED_INPUT = fused.SHARED_INPUT, shared_input
            try:
                composed["active"] = ComposedModel(shared.model, modules)
            finally:
                fused.SHARED_INPUT = saved
            composed["active"].set_weights(weights)
        return setup

    def detach() -> None:
        composed.pop("active").detach()

    three = torch.zeros(1, bank_size)
    three[0, :3] = 1.0
    peft_model = PeftModel.from_pretrained(load_base(model_spec, quantize=None).model, str(paths[names[0]]),
                                           adapter_name=names[0])
    for name in names[1:8]:
        peft_model.load_adapter(str(paths[name]), adapter_name=name)
    peft_model.base_model.set_adapter(names[:8])
    peft_model.eval()
    return [Config("base", lambda: shared.model),
            Config("fused-3", lambda: shared.model, attach(ModuleBank.from_loaded(bank.modules[:3]),
                                                           torch.ones(1, 3)), detach),
            Config(f"bank{bank_size}-3", lambda: shared.model, attach(big, three), detach),
            Config("fused-8", lambda: shared.model, attach(ModuleBank.from_loaded(bank.modules[:8]),
                                                           torch.ones(1, 8)), detach),
            Config("fused-8-separate", lambda: shared.model, attach(ModuleBank.from_loaded(bank.modules[:8]),
                                                                    torch.ones(1, 8), ()), detach),
            Config("peft-8", lambda: peft_model)]


@torch.no_grad()
def time_loop(composed, prompt: list[int], tokens: int, seed: int) -> list[float]:
    """Seconds of each `Decoder.step()` for one sequence sampling `tokens` tokens (the first step is the prefill)."""
    from loracompose.decoding import Decoder, SamplingConfig, Sequence

    no_eos = SimpleNamespace(eos_token_id=-1, pad_token_id=0)  # EOS off: every run makes `tokens` tokens
    decoder = Decoder(composed, no_eos, [Sequence(prompt, seed, SamplingConfig(max_new_tokens=tokens))])
    watch, times = Stopwatch(decoder.device), []
    with composed.composition(None):
        while not decoder.done:
            watch.start()
            decoder.step()
            times.append(watch.stop())
    return times


def decode_loop(model_spec: str, settings: Settings) -> dict:
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.models import load_base

    model = load_base(model_spec, quantize=None).model
    composed = ComposedModel(model, ModuleBank.from_loaded([]))  # the bare base, as `generate` runs it
    torch.manual_seed(0)
    prompt = torch.randint(100, 1000, (1, settings.prefill))
    time_loop(composed, prompt[0].tolist(), 4, 0)  # warm-up
    time_run(model, prompt, 4)
    loop_steps, loop_rates, bare_steps = [], [], []
    for repeat in range(settings.repeats):
        for kind in ("loop", "bare") if repeat % 2 == 0 else ("bare", "loop"):
            if kind == "loop":
                times = time_loop(composed, prompt[0].tolist(), settings.loop_tokens, repeat)[1:]  # [0]: prefill
                loop_steps += times
                loop_rates.append(len(times) / sum(times))
            else:
                bare_steps += time_run(model, prompt, settings.loop_tokens - 1)[1]
    bare, loop = summary(bare_steps, 1000), summary(loop_steps, 1000)
    rate = summary(loop_rates)
    return {"bare_step_ms": bare, "loop_step_ms": loop, "loop_tokens_per_s": rate,
            "bound_tokens_per_s": 1000 / bare["median"],
            "loop_over_step_bound": rate["median"] * bare["median"] / 1000,
            "loop_step_over_bare_step": ratio(loop, bare)}


def run(settings: Settings, model_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths, modules = prepare_modules(Settings(**{**settings.__dict__, "ns": (8,)}), model_dir, Path(tmp))
        configs = _step_configs(settings.model, paths, settings.bank)
        torch.manual_seed(0)
        prefill = torch.randint(100, 1000, (settings.floor_batch, settings.prefill))
        steps, _ = interleave(configs, prefill, settings.repeats, settings.steps)
    rows = {name: summary(times, 1000) for name, times in steps.items()}
    big = f"bank{settings.bank}-3"
    return {"setting": {"base": "dense float32", "batch": settings.floor_batch, "prefill_tokens": settings.prefill,
                        "steps_per_run": settings.steps, "repeats": settings.repeats, "bank": settings.bank,
                        "active": 3, "weights": "active modules 1, the others 0", "loop_tokens": settings.loop_tokens,
                        "loop_sampling": "top-k 50, top-p 0.95, temperature 1, EOS off"},
            "modules": modules, "step_ms": rows,
            "ratios": {"bank_over_fused_3": ratio(rows[big], rows["fused-3"]),
                       "fused_8_over_base": ratio(rows["fused-8"], rows["base"]),
                       "peft_8_over_fused_8": ratio(rows["peft-8"], rows["fused-8"]),
                       "separate_a_over_shared_a": ratio(rows["fused-8-separate"], rows["fused-8"])},
            "decode_loop": decode_loop(settings.model, settings)}
