"""Content-hash keys of stage inputs, and where each finished stage lives on disk.

A stage's key is the SHA-256 of the canonical JSON (sorted keys) of everything
that decides its output: its settings, the keys of the stages it reads, the
content hashes of its data and the stage's format version. Two runs that would
compute the same thing share one key — across experiments, spec files and
working directories — and a changed setting changes exactly the keys of the
stages downstream of it.

    <workdir>/cache/train/<key>/          a module directory (PEFT adapter + loracompose.json)
    <workdir>/cache/compose/<key>/        a merged module directory
    <workdir>/cache/learn/<key>.json      learned composition weights
    <workdir>/cache/data/<key>.jsonl      a derived training file (multi set's combined module)
    <workdir>/cache/generate/<key>.jsonl  generations
    <workdir>/cache/evaluate/<key>.json   metrics.json of those generations

Every file and directory is moved into place only when complete, so "it exists"
means "it is finished", and a killed run redoes only the stage it was in.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from loracompose.paths import write_text_atomic

STAGE_VERSION = 1  # bump when a stage's output format or meaning changes
KEY_LENGTH = 20  # hex digits kept in file names (80 bits)


def content_key(stage: str, inputs: dict) -> str:
    blob = json.dumps({"stage": stage, "version": STAGE_VERSION, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:KEY_LENGTH]


def stage_path(workdir: str | Path, stage: str, key: str) -> Path:
    suffix = {"learn": ".json", "data": ".jsonl", "generate": ".jsonl", "evaluate": ".json"}.get(stage, "")
    return Path(workdir) / "cache" / stage / f"{key}{suffix}"


def write_json(path: Path, value) -> Path:
    return write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")
