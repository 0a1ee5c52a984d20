"""Figure 2 — mixed batches: 16 requests with 16 different compositions.

    batched    one `decoding.sample` call: 16 sequences, each with its own weight row
               (the fused layers read a (16, N) weight matrix)
    separate   16 `decoding.sample` calls, one request (one composition) each — what a
               model that holds one composition at a time has to do

Same base (dense float32), same bank of N modules, same prompts, seeds and
sampling (top-k 50, top-p 0.95): the texts are identical either way (each
sequence has its own generator). EOS is disabled while timing so every request
produces exactly `new_tokens` tokens and both sides do the same work.
Throughput = requests × new_tokens / wall time; repeated, interleaved.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import torch

from benchmarks.common import Settings, prepare_modules, ratio, summary
from benchmarks.timing import Stopwatch


class _NoEos:
    """The tokenizer with EOS switched off for the sampling loop, so no request stops early.

    (A proxy rather than a changed tokenizer: the loop only reads eos_token_id,
    pad_token_id, calls it and decodes; padding_side is set on the real one first.)
    """

    eos_token_id = -1

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        return self._tokenizer(*args, **kwargs)


def compositions(names: list[str], count: int) -> list[dict[str, float]]:
    """`count` distinct compositions: module subsets of varying size with weights in [0.3, 1.5]."""
    generator = torch.Generator().manual_seed(0)
    result = []
    for i in range(count):
        size = 1 + i % min(len(names), 4)
        chosen = torch.randperm(len(names), generator=generator)[:size].tolist()
        weights = 0.3 + 1.2 * torch.rand(size, generator=generator)
        result.append({names[c]: round(float(w), 3) for c, w in zip(chosen, weights)})
    return result


def run(settings: Settings, model_dir: str) -> dict:
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.decoding import SamplingConfig, row_seed, sample
    from loracompose.prompts import PPLM_PROMPTS
    from loracompose.models import load_base

    with tempfile.TemporaryDirectory() as tmp:
        paths, modules = prepare_modules(settings, model_dir, Path(tmp))
        base = load_base(settings.model, quantize=None)
        composed = ComposedModel(base.model, ModuleBank(base.model, paths, base.fingerprint))
    count = settings.mixed_requests
    comps = compositions(composed.bank.names, count)
    weights = composed.weights_for(comps)  # (count, N)
    prompts = [PPLM_PROMPTS[i % len(PPLM_PROMPTS)] for i in range(count)]
    seeds = [row_seed(0, i) for i in range(count)]
    config = SamplingConfig(max_new_tokens=settings.new_tokens, batch_size=count)
    base.tokenizer.padding_side = "left"
    tokenizer = _NoEos(base.tokenizer)

    def batched() -> list[str]:
        return sample(composed, tokenizer, prompts, seeds, config, weights=weights)

    def separate() -> list[str]:
        return [sample(composed, tokenizer, [p], [s], config, weights=weights[i : i + 1])[0]
                for i, (p, s) in enumerate(zip(prompts, seeds))]

    measured = compare(batched, separate, count * settings.new_tokens, settings.repeats)
    composed.detach()
    return {"setting": {"requests": count, "new_tokens": settings.new_tokens, "repeats": settings.repeats,
                        "base": "dense float32", "modules_in_bank": len(paths),
                        "sampling": "top-k 50, top-p 0.95, T 1, per-request seeds; EOS off while timing",
                        "compositions": comps},
            "modules": modules, **measured}


def compare(batched: Callable[[], list], separate: Callable[[], list], tokens: int, repeats: int,
            device: torch.device | str = "cpu") -> dict:
    """tokens/s of `batched` and `separate` (each produces `tokens` tokens), interleaved over `repeats`.

    The first call of each is the warm-up and checks that both produce the same outputs.
    """
    same = batched() == separate()  # also the warm-up
    throughput: dict[str, list[float]] = {"batched": [], "separate": []}
    watch = Stopwatch(device)
    for repeat in range(repeats):
        for name, fn in (("batched", batched), ("separate", separate))[:: 1 if repeat % 2 == 0 else -1]:
            watch.start()
            fn()
            throughput[name].append(tokens / watch.stop())
    rows = {name: summary(values) for name, values in throughput.items()}
    return {"tokens_per_s": rows, "ratio_batched_over_separate": ratio(rows["batched"], rows["separate"]),
            "same_texts": same}
