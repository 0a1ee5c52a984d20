"""learn-weights: choose composition weights from a few example texts (LoRAHub-style).

With the base and every module frozen, minimise over the weights w ∈ R^N alone

    L(w) = (1/T) Σ_t −log p_w(x_t | x_<t)  +  λ·Σ_i |w_i|

where p_w is the output-sum composition with weights w, over the packed example
texts. LoRAHub (Huang et al., 2023) searches w gradient-free; the fused layers
make w differentiable, so Adam on N numbers does the same job in a few dozen
steps. The L1 term (LoRAHub's too) keeps unhelpful modules near 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from loracompose.compose.bank import ModuleBank
from loracompose.compose.fused import ComposedModel
from loracompose.errors import LoraComposeError
from loracompose.packing import PackedCollator, pack_documents, tokenize_documents

MIN_EXAMPLES = 8


@dataclass(frozen=True)
class LearnConfig:
    steps: int = 40
    learning_rate: float = 0.05
    l1: float = 0.01  # λ of the L1 penalty
    seq_len: int = 64
    init: float | None = None  # initial weight of every module (default 1/N)


def learn_weights(model, tokenizer, bank: ModuleBank, texts: list[str], config: LearnConfig = LearnConfig()) -> dict:
    """Returns the weights found and the LM loss at the start, after, and of the bare base."""
    if len(texts) < MIN_EXAMPLES:
        raise LoraComposeError(f"learn-weights needs at least {MIN_EXAMPLES} example texts, got {len(texts)}")
    if len(bank) == 0:
        raise LoraComposeError("learn-weights needs at least one module")
    rows = pack_documents(tokenize_documents(tokenizer, texts, config.seq_len), config.seq_len,
                          tokenizer.pad_token_id)
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in PackedCollator()(rows).items()}
    composed = ComposedModel(model, bank)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)

    def lm_loss(weights: torch.Tensor) -> torch.Tensor:
        with composed.composition(weights[None, :].expand(batch["input_ids"].shape[0], -1)):
            return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], labels=batch["labels"],
                         use_cache=False).loss

    try:
        n = len(bank)
        w = torch.full((n,), config.init if config.init is not None else 1.0 / n, device=device, requires_grad=True)
        with torch.no_grad():
            loss_base = lm_loss(torch.zeros(n, device=device)).item()
            loss_start = lm_loss(w).item()
        optimiser = torch.optim.Adam([w], lr=config.learning_rate)
        history = []
        for _ in range(config.steps):
            optimiser.zero_grad()
            loss = lm_loss(w)
            (loss + config.l1 * w.abs().sum()).backward()
            optimiser.step()
            history.append(round(loss.item(), 5))
        with torch.no_grad():
            loss_end = lm_loss(w).item()
    finally:
        composed.detach()
        for p in frozen:
            p.requires_grad_(True)
    weights = {name: round(float(v), 4) for name, v in zip(bank.names, w.detach().cpu())}
    return {"weights": weights, "composition": ",".join(f"{k}={v:g}" for k, v in weights.items()),
            "loss_base": loss_base, "loss_start": loss_start, "loss_end": loss_end, "loss_history": history,
            "examples": len(texts), "config": asdict(config)}
