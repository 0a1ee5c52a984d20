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


MAX_JSON_BYTES = 1_000_000  # adapter_config.json and loracompose.json are a few kB


def _fail(path: Path, problem: str) -> LoraComposeError:
    return LoraComposeError(f"module '{_printable(path)}' is refused: {problem}")


def _printable(value, limit: int = 200) -> str:
    """A name or path as a message may show it: valid UTF-8 and bounded."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def module_file(path: Path, name: str) -> Path:
    """`path/name`, refused when it (or a symlink on the way) resolves outside the module directory."""
    file = path / name
    if not file.resolve().is_relative_to(path.resolve()):
        raise _fail(path, f"{name} is a link to a file outside the module directory")
    return file


def _read_json(path: Path, name: str) -> dict:
    file = module_file(path, name)
    if file.stat().st_size > MAX_JSON_BYTES:
        raise _fail(path, f"{name} is {file.stat().st_size} bytes; at most {MAX_JSON_BYTES} are accepted")
    try:
        value = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail(path, f"{name} is not UTF-8 text") from None
    except RecursionError:
        raise _fail(path, f"{name} is nested too deeply") from None
    except ValueError as exc:
        raise _fail(path, f"{name} is not valid JSON ({_printable(exc, 80)})") from None
    if not isinstance(value, dict):
        raise _fail(path, f"{name} must hold a JSON object, not a {type(value).__name__}")
    return value


def _number(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # a whole number beyond float's range (JSON allows 1e400 as an int: 10**400)
        return False


def _check_text(path: Path, what: str, value, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or len(value) > 200:
        raise _fail(path, f"its {what} must be a non-empty string of at most 200 characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(path, f"its {what} is not valid Unicode text") from None
    if any(ord(c) < 32 for c in value):
        raise _fail(path, f"its {what} holds control characters")


def _check_config(path: Path, config: dict) -> None:
    """What composition reads from adapter_config.json: LORA, a whole rank >= 1, a finite alpha."""
    if config.get("peft_type") != "LORA":
        raise _fail(path, f"it is a {_printable(config.get('peft_type'), 40)} adapter; only LORA is supported")
    rank = config.get("r")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise _fail(path, f"adapter_config.json 'r' must be a whole number >= 1, got {_printable(repr(rank), 40)}")
    alpha = config.get("lora_alpha")
    if not _number(alpha):
        raise _fail(path, f"adapter_config.json 'lora_alpha' must be a finite number, got "
                          f"{_printable(repr(alpha), 40)}")
    for key in ("alpha_pattern", "rank_pattern"):
        patterns = config.get(key) or {}
        if not isinstance(patterns, dict) or not all(_number(v) for v in patterns.values()):
            raise _fail(path, f"adapter_config.json '{key}' must map layer names to finite numbers")


def read_module(path: str | Path) -> ModuleInfo:
    """Read a module directory's configs; refuse, naming the module, what is not a usable LoRA adapter."""
    path = Path(path)
    if not path.is_dir():
        raise LoraComposeError(f"module '{_printable(path)}' does not exist (expected a PEFT adapter directory)")
    if not is_module(path):
        raise LoraComposeError(
            f"'{_printable(path)}' is not a module: it needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS} "
            "(a PEFT LoRA adapter saved with safetensors)"
        )
    config = _read_json(path, ADAPTER_CONFIG)
    _check_config(path, config)
    module_file(path, ADAPTER_WEIGHTS)
    metadata = _read_json(path, METADATA_FILE) if (path / METADATA_FILE).is_file() else {}
    name = metadata.get("name", path.name)
    _check_text(path, "name", name, optional=False)
    for key in ("label", "attribute"):
        _check_text(path, key, metadata.get(key))
    if not isinstance(metadata.get("datasets", []), list):
        raise _fail(path, f"{METADATA_FILE} 'datasets' must be a list")
    if not isinstance(metadata.get("base") or {}, dict):
        raise _fail(path, f"{METADATA_FILE} 'base' must be an object (the base model's fingerprint)")
    return ModuleInfo(path, name, config, metadata)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: a loss that never was measured is recorded as null."""
    return None if value is None or not math.isfinite(value) else float(value)
