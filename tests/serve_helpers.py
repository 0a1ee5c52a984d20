"""A tiny served model with two modules (plain PEFT adapters plus loracompose.json metadata); a tiny fused model
with two random modules for the decoder's tests; concurrent requests."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from loracompose.testing import random_adapter

MODULES = {"positive@tiny": ("sentiment", "positive", 31), "sport@tiny": ("topic", "sport", 33)}


def make_modules(model_dir: Path, root: Path) -> Path:
    for name, (attribute, label, seed) in MODULES.items():
        directory = random_adapter(model_dir, root / name, seed=seed)
        (directory / "loracompose.json").write_text(json.dumps(
            {"format": "loracompose-module/1", "name": name, "attribute": attribute, "label": label,
             "datasets": [{"name": "tiny"}]}))
    return root


def two_module_composed(model_dir: Path, root: Path):
    """(ComposedModel over random modules a1 (rank 8) and b2 (rank 2), tokenizer) on the dense model in `model_dir`."""
    from loracompose.compose.bank import ModuleBank
    from loracompose.compose.fused import ComposedModel
    from loracompose.models import load_base

    base = load_base(str(model_dir), quantize=None)
    paths = {"a1": random_adapter(model_dir, root / "a1", seed=51),
             "b2": random_adapter(model_dir, root / "b2", seed=52, rank=2)}
    return ComposedModel(base.model, ModuleBank(base.model, paths, base.fingerprint)), base.tokenizer


def post_concurrently(url: str, bodies: list[dict]) -> list:
    """POST each body to `url`/v1/completions at once, one thread each; the responses in order."""
    import httpx  # the serve extra: only the serving tests call this

    results: list = [None] * len(bodies)

    def send(i):
        results[i] = httpx.post(f"{url}/v1/completions", json=bodies[i], timeout=60)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
