"""PEFT's own computations, the references the composition tests compare against.

The adapters themselves come from `loracompose.testing.random_adapter` (random A and B, B ≠ 0).
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel

from loracompose.models import load_base
from loracompose.testing import activate_weighted


def _peft_model(model_dir: Path, adapters: dict[str, Path], names: list[str], quantize: str | None) -> PeftModel:
    base = load_base(str(model_dir), quantize=quantize).model
    model = PeftModel.from_pretrained(base, str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(adapters[name]), adapter_name=name)
    return model


def peft_output_sum(model_dir: Path, adapters: dict[str, Path], weights: dict[str, float], ids: torch.Tensor,
                    quantize: str | None = None) -> torch.Tensor:
    """Logits of PEFT's multi-adapter forward: every adapter active, each layer's scale times its weight.

    Each adapted layer then computes W0·x + Σ_i w_i·(alpha_i/r_i)·B_i·A_i·x.
    """
    model = activate_weighted(_peft_model(model_dir, adapters, list(weights), quantize), weights)
    with torch.no_grad():
        return model.eval()(ids).logits


def peft_weighted(model_dir: Path, adapters: dict[str, Path], weights: dict[str, float], combination: str,
                  ids: torch.Tensor, **kwargs) -> torch.Tensor:
    """Logits after PEFT's `add_weighted_adapter(..., combination_type=combination)` (seeded by `seed`)."""
    names = list(adapters)
    model = _peft_model(model_dir, adapters, names, None)
    torch.manual_seed(kwargs.pop("seed", 0))
    model.add_weighted_adapter(names, [weights[n] for n in names], "merged", combination_type=combination,
                               **kwargs)
    model.set_adapter("merged")
    with torch.no_grad():
        return model.eval()(ids).logits
