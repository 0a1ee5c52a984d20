"""Seeded, batched sampling from a base model with or without a module.

Defaults follow the controlled-generation protocol of PPLM and its successors:
top-k 50, top-p 0.95, temperature 1.0. The same prompts, settings and seed give
the same text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 40
    top_k: int = 50
    top_p: float = 0.95
    temperature: float = 1.0
    samples: int = 1  # continuations per prompt
    seed: int = 0
    batch_size: int = 16  # sequences per forward


def sample_texts(model, tokenizer, prompts: list[str], config: SamplingConfig = SamplingConfig()) -> list[dict]:
    """Continue each prompt `config.samples` times; one record per continuation.

    Returns dicts with `prompt`, `sample` (index), `text` (continuation only),
    `seed` and the sampling settings, in prompt order.
    """
    requests = [(prompt, i) for prompt in prompts for i in range(config.samples)]
    tokenizer.padding_side = "left"  # decoder-only: pad on the left so continuations line up
    torch.manual_seed(config.seed)
    records = []
    for start in range(0, len(requests), config.batch_size):
        chunk = requests[start : start + config.batch_size]
        batch = tokenizer([p for p, _ in chunk], return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            output = model.generate(
                **batch, do_sample=True, top_k=config.top_k, top_p=config.top_p, temperature=config.temperature,
                max_new_tokens=config.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
            )
        continuations = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for (prompt, index), text in zip(chunk, continuations):
            records.append({"prompt": prompt, "sample": index, "text": text, "seed": config.seed,
                            "sampling": asdict(config)})
    return records
