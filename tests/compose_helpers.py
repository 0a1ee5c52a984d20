"""Plain PEFT adapters with non-zero B on the tiny model, for composition tests."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def make_adapter(model_dir: Path, out: Path, seed: int, rank: int = 4, alpha: float = 8.0,
                 targets=("q_proj", "v_proj", "down_proj")) -> Path:
    """Save a PEFT LoRA adapter whose A and B are both random (B ≠ 0, so every equality test bites)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # large enough that the update moves the logits clearly
    peft_model.save_pretrained(out)
    return out
