"""A module on disk: a plain PEFT LoRA adapter directory plus `loracompose.json`.

    modules/positive@imdb/
      adapter_config.json          PEFT's own files: PeftModel.from_pretrained loads them
      adapter_model.safetensors
      loracompose.json             attribute, label, datasets + content hashes,
                                   base fingerprint, training record, version

Adapters trained elsewhere with plain PEFT (no loracompose.json) are modules too;
their metadata is then derived from the adapter config alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from loracompose.errors import LoraComposeError

METADATA_FILE = "loracompose.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
FORMAT = "loracompose-module/1"


def module_name(label: str, datasets: list[str]) -> str:
    """The conventional name `label@dataset`, or `label@d1+d2+d3` for combined training."""
    return f"{label}@{'+'.join(datasets)}"


def is_module(path: Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).is_file() and (Path(path) / ADAPTER_WEIGHTS).is_file()


def write_metadata(directory: Path, metadata: dict) -> None:
    payload = {"format": FORMAT, **metadata}
    (Path(directory) / METADATA_FILE).write_text(json.dumps(payload, indent=2, sort_keys=False, allow_nan=False))


@dataclass
class ModuleInfo:
    """What is known of a module without loading its tensors."""

    path: Path
    name: str
    adapter_config: dict
    metadata: dict  # loracompose.json, or {} for a plain PEFT adapter

    @property
    def rank(self) -> int:
        return int(self.adapter_config["r"])

    @property
    def alpha(self) -> float:
        return float(self.adapter_config["lora_alpha"])

    @property
    def label(self) -> str | None:
        return self.metadata.get("label")

    @property
    def attribute(self) -> str | None:
        return self.metadata.get("attribute")


def read_module(path: str | Path) -> ModuleInfo:
    """Read a module directory's configs; refuse what is not a LoRA adapter."""
    path = Path(path)
    if not path.is_dir():
        raise LoraComposeError(f"module '{path}' does not exist (expected a PEFT adapter directory)")
    if not is_module(path):
        raise LoraComposeError(
            f"'{path}' is not a module: it needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS} "
            "(a PEFT LoRA adapter saved with safetensors)"
        )
    config = json.loads((path / ADAPTER_CONFIG).read_text())
    if config.get("peft_type") != "LORA":
        raise LoraComposeError(f"module '{path}' is a {config.get('peft_type')} adapter; only LORA is supported")
    meta_file = path / METADATA_FILE
    metadata = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    return ModuleInfo(path, metadata.get("name", path.name), config, metadata)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: a loss that never was measured is recorded as null."""
    return None if value is None or not math.isfinite(value) else float(value)
