"""Activation addition: a steering vector from the modules' own data, added to the residual stream.

With h_ℓ(x) ∈ R^H the output of decoder layer ℓ (the residual stream after it) at each
token of text x, and T⁺, T⁻ texts of the target label and of the opposite one:

    d = mean_{x ∈ T⁺} mean_t h_ℓ(x)_t  −  mean_{x ∈ T⁻} mean_t h_ℓ(x)_t          (H,)
    v = c · m · d / ‖d‖

where m is the median ‖h_ℓ‖ over the tokens of T⁺ ∪ T⁻ (so the scale c is a fraction of
a typical residual norm, comparable across layers and models). While active, v is added
to layer ℓ's output at every position, prompt included (Turner et al.'s ActAdd uses a
contrast pair of prompts; the mean over many labelled texts is the "mean difference"
vector of Im & Li and of AxBench's DiffMean). The texts are the same corpus the modules
learnt from (its `train` split), so it competes on equal data.

Written here because no library in the stack does it; it is a forward hook.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import torch

from loracompose.errors import LoraComposeError

SCALE_RANGE = (0.0, 2.0)  # c: exclusive lower bound, inclusive upper bound


def decoder_layers(model) -> torch.nn.ModuleList:
    """The model's decoder layers (llama, gemma3 and most HF causal LMs)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", model)
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise LoraComposeError(f"activation addition: cannot find the decoder layers of {type(model).__name__}")
    return layers


def check_layer(model, layer: int) -> int:
    n = len(decoder_layers(model))
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n:
        raise LoraComposeError(f"activation addition layer {layer!r} is out of range; accepted: 0 to {n - 1}")
    return layer


def check_scale(scale: float) -> float:
    low, high = SCALE_RANGE
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not low < scale <= high:
        raise LoraComposeError(f"activation addition scale {scale!r} is out of range; accepted: above {low} and at "
                               f"most {high} (a fraction of the median residual norm)")
    return float(scale)


@dataclass
class SteeringVector:
    layer: int
    direction: torch.Tensor  # (H,) unit vector, target minus opposite
    median_norm: float  # m: median residual norm at the layer over the texts' tokens
    texts: int  # texts per label it was computed from

    def record(self) -> dict:
        return {"layer": self.layer, "median_norm": self.median_norm, "texts_per_label": self.texts}


@torch.no_grad()
def _layer_states(model, tokenizer, texts: list[str], layer: int, max_tokens: int, batch_size: int):
    """(per-text mean of h_ℓ (n, H), all token norms (tokens,))."""
    captured = {}
    handle = decoder_layers(model)[layer].register_forward_hook(
        lambda module, args, output: captured.__setitem__("h", output[0] if isinstance(output, tuple) else output))
    means, norms = [], []
    tokenizer.padding_side = "right"
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start: start + batch_size], return_tensors="pt", padding=True, truncation=True,
                              max_length=max_tokens)
            model(**batch)
            h, mask = captured["h"].float(), batch["attention_mask"].bool()  # (B, T, H), (B, T)
            means.append((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
            norms.append(h[mask].norm(dim=-1))
    finally:
        handle.remove()
    return torch.cat(means), torch.cat(norms)


def steering_vector(model, tokenizer, target_texts: list[str], opposite_texts: list[str], layer: int, *,
                    max_tokens: int = 64, batch_size: int = 16) -> SteeringVector:
    """The unit mean difference at `layer` between target and opposite texts, with the median norm."""
    check_layer(model, layer)
    if not target_texts or not opposite_texts:
        raise LoraComposeError("activation addition needs texts of both labels")
    pos, pos_norms = _layer_states(model, tokenizer, target_texts, layer, max_tokens, batch_size)
    neg, neg_norms = _layer_states(model, tokenizer, opposite_texts, layer, max_tokens, batch_size)
    difference = pos.mean(0) - neg.mean(0)
    return SteeringVector(layer, difference / difference.norm(), float(torch.cat([pos_norms, neg_norms]).median()),
                          min(len(target_texts), len(opposite_texts)))


def label_texts(dataset_name: str, label: str, n: int, seed: int = 0) -> list[str]:
    """A seeded sample of `n` texts of one label from a dataset's `train` split (what modules learn from)."""
    from loracompose.data import load_attribute_dataset

    texts = load_attribute_dataset(dataset_name).texts("train", label)
    if len(texts) > n:
        texts = random.Random(f"{seed}:{dataset_name}:{label}").sample(texts, n)
    return texts


@contextlib.contextmanager
def added(model, vector: SteeringVector, scale: float, sign: float = 1.0):
    """While active, layer ℓ's output gains sign · scale · m · direction at every position."""
    check_scale(scale)
    shift = sign * scale * vector.median_norm * vector.direction

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (output[0] + shift.to(output[0].dtype),) + tuple(output[1:])
        return output + shift.to(output.dtype)

    handle = decoder_layers(model)[vector.layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
