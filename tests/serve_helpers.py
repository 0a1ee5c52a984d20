"""A tiny served model with two modules (plain PEFT adapters plus loracompose.json metadata); concurrent requests."""

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
