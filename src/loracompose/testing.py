"""Tiny models and random adapters for tests and the benchmark harness (no weights to download).

One builder shared by `tests/` and `benchmarks/`, kept in the package (as
`transformers.testing_utils` and `torch.testing` are) so both import it the
same way without path tricks, and the two cannot drift apart again.

    build_tiny_model   2-layer llama, hidden 64, random weights, SmolLM2's tokenizer
    random_adapter     a plain PEFT LoRA adapter with random A *and* B (B ≠ 0)

With B = 0 (PEFT's default initialisation) an adapter changes nothing, and every
equality test between two ways of composing adapters passes trivially; random B
makes those tests bite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

# The tests' adapter targets: attention and MLP projections of different shapes (64×64, 64×32, 64×128).
TEST_TARGETS = ("q_proj", "v_proj", "down_proj")


def build_tiny_model(out: Path, tokenizer_dir: Path | None = None, seed: int = 0) -> Path:
    """Save a 2-layer random llama with SmolLM2's tokenizer to `out`; return `out`.

    Shapes are multiples of 64 so bitsandbytes can quantise every projection to
    NF4. `initializer_range` 0.1 (default 0.02) makes a few LoRA steps move the
    loss visibly. `tokenizer_dir` defaults to the packaged SmolLM2, converted
    once into the cache. The weights depend only on `seed` and the torch and
    transformers versions (tests pin a logit of this model).
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if tokenizer_dir is None:
        from loracompose.models import convert_packaged

        tokenizer_dir = convert_packaged("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        initializer_range=0.1,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)


def random_adapter(model_dir: str | Path, out: Path, seed: int, rank: int = 4, alpha: float = 8.0,
                   targets: Sequence[str] | str = TEST_TARGETS, b_std: float = 0.5) -> Path:
    """Save a PEFT LoRA adapter for the model in `model_dir` whose A and B are both random; return `out`.

    A: PEFT's own random initialisation (`init_lora_weights=False`); B ~ N(0, b_std²)
    drawn after it from torch's generator seeded with `seed`. The tests' default
    b_std 0.5 moves the tiny model's logits clearly; the benchmarks pass 0.02
    (values are irrelevant to timing). `targets` is a list of layer names or
    PEFT's "all-linear".
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    target_modules = targets if isinstance(targets, str) else list(targets)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=target_modules,
                                                  init_lora_weights=False))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, b_std)
    peft_model.save_pretrained(out)
    return Path(out)


def activate_weighted(peft_model, weights: dict[str, float]):
    """Make PEFT compute output-sum itself: every adapter in `weights` active, each scale times its weight.

    Each adapted layer then computes W0·x + Σ_i w_i·(alpha_i/r_i)·B_i·A_i·x — the reference
    the fused layers are tested against. (`base_model.set_adapter` takes a list;
    `PeftModel.set_adapter` does not.) Returns `peft_model`.
    """
    names = list(weights)
    peft_model.base_model.set_adapter(names)
    for module in peft_model.modules():
        if hasattr(module, "set_scale") and hasattr(module, "lora_A"):
            for name in names:
                if name in module.lora_A:
                    module.set_scale(name, weights[name])
    return peft_model
