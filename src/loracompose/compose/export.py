"""Write per-layer (A, B) pairs as one ordinary PEFT LoRA adapter directory.

Layers may carry different ranks (a delta-sum over modules with different
targets); they are zero-padded to the largest rank R, which adds exact zeros, so
the adapter has one rank and one alpha (= R, scale 1) that every LoRA server
(vLLM, LoRAX, TGI) accepts — vLLM needs `max_lora_rank` ≥ R.
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig
from safetensors.torch import save_file

from loracompose.compose.bank import LoraPair
from loracompose.errors import LoraComposeError
from loracompose.modules import ADAPTER_WEIGHTS, write_metadata
from loracompose.paths import atomic_directory


def padded_rank(pairs: dict[str, LoraPair]) -> int:
    return max(pair.rank for pair in pairs.values())


def write_adapter(pairs: dict[str, LoraPair], out: str | Path, *, base_model_name: str, metadata: dict,
                  overwrite: bool = False) -> Path:
    """Save `pairs` (scale folded in) as a PEFT adapter + loracompose.json, atomically; a non-finite
    tensor is refused before anything is written."""
    rank = padded_rank(pairs)
    tensors = {}
    for layer, pair in pairs.items():
        A = torch.zeros(rank, pair.A.shape[1])
        B = torch.zeros(pair.B.shape[0], rank)
        A[: pair.rank] = pair.scale * pair.A.float()
        B[:, : pair.rank] = pair.B.float()
        if not (torch.isfinite(A).all() and torch.isfinite(B).all()):
            raise LoraComposeError(f"cannot export '{Path(out).name}': layer {layer} has NaN or Inf values after "
                                   f"folding in its scale ({pair.scale:.3g}); nothing was written")
        tensors[f"base_model.model.{layer}.lora_A.weight"] = A.contiguous()
        tensors[f"base_model.model.{layer}.lora_B.weight"] = B.contiguous()
    # Exact layer names: PEFT matches a target by name suffix, so a full name selects just that layer.
    config = LoraConfig(r=rank, lora_alpha=rank, target_modules=sorted(pairs), lora_dropout=0.0, bias="none",
                        task_type="CAUSAL_LM", base_model_name_or_path=base_model_name)
    with atomic_directory(Path(out), overwrite=overwrite) as staging:
        config.save_pretrained(str(staging))
        save_file(tensors, str(staging / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        write_metadata(staging, {**metadata, "rank": rank})
    return Path(out)
