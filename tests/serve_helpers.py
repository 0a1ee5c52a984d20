"""A tiny served model with two modules (plain PEFT adapters plus loracompose.json metadata)."""

from __future__ import annotations

import json
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
