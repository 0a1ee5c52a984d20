"""Mixing several datasets into one training stream (combined training).

With n_i examples in source i, each strategy draws N = Σ n_i examples in all,
c_i ≈ N·p_i from source i, where
  concat          p_i = n_i / N            (every example once)
  balanced        p_i = 1 / k              (k sources, equal shares)
  temperature:T   p_i ∝ (n_i / N)^(1/T)    (T=1 is concat, T→∞ balanced)
A source asked for more than it has is repeated whole (each copy reshuffled),
then topped up with a random subset; one asked for fewer is subsampled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loracompose.errors import LoraComposeError


@dataclass(frozen=True)
class Mixing:
    kind: str  # "concat" | "balanced" | "temperature"
    temperature: float = 1.0

    @classmethod
    def parse(cls, text: str) -> "Mixing":
        if text in ("concat", "balanced"):
            return cls(text)
        if text.startswith("temperature:"):
            try:
                value = float(text.split(":", 1)[1])
            except ValueError:
                value = -1.0
            if value > 0:
                return cls("temperature", value)
        raise LoraComposeError(
            f"unknown mixing '{text}'; accepted: concat, balanced, temperature:T with T > 0 (e.g. temperature:2)"
        )

    def __str__(self) -> str:
        return f"temperature:{self.temperature:g}" if self.kind == "temperature" else self.kind

    def shares(self, sizes: list[int]) -> list[float]:
        total = sum(sizes)
        if self.kind == "concat":
            weights = [n / total for n in sizes]
        elif self.kind == "balanced":
            weights = [1.0] * len(sizes)
        else:
            weights = [(n / total) ** (1.0 / self.temperature) for n in sizes]
        norm = sum(weights)
        return [w / norm for w in weights]


def _draw(texts: list[str], count: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    while count - len(out) >= len(texts):
        out.extend(rng.sample(texts, len(texts)))
    return out + rng.sample(texts, count - len(out))


def mix_sources(sources: list[list[str]], mixing: Mixing, seed: int) -> list[str]:
    """One shuffled list of training texts drawn from `sources` by `mixing`."""
    if not sources or any(len(s) == 0 for s in sources):
        raise LoraComposeError("every source must hold at least one text to be mixed")
    rng = random.Random(seed)
    sizes = [len(s) for s in sources]
    total = sum(sizes)
    counts = [round(total * share) for share in mixing.shares(sizes)]
    mixed = [text for texts, count in zip(sources, counts) for text in _draw(sorted(texts), count, rng)]
    rng.shuffle(mixed)
    return mixed
