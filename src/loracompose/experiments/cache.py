"""Content-hash keys of stage inputs, and where each finished stage lives on disk.

A stage's key is the SHA-256 of the canonical JSON (sorted keys) of everything
that decides its output: its settings (typed dataclasses, hashed with
`dataclasses.asdict`, defaults included), the keys of the stages it reads, the
content hashes of its data, and the hash of the code that computes it. Two runs
that would compute the same thing share one key — across experiments, spec
files and working directories — and a changed setting changes exactly the keys
of the stages downstream of it.

The code of a stage is listed in STAGE_CODE: the library modules it runs
(whole files) and the experiment glue that calls them (single functions of
`stages.py` and `spec.py`, so an edit to the evaluation glue does not retrain
modules). Each is hashed as its syntax tree (`ast.dump`), so edits to comments
and formatting keep the cache; any other edit changes the stage's key and the
keys of every stage downstream of it. `tests/test_experiments_cache.py` checks
that each list covers what its modules import.

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

import ast
import functools
import hashlib
import json
from pathlib import Path

from loracompose.paths import write_text_atomic

KEY_LENGTH = 20  # hex digits kept in file names (80 bits)
_PACKAGE = Path(__file__).resolve().parents[1]  # src/loracompose

_DATA = ("loracompose.data", "loracompose.data.builtin", "loracompose.data.clean", "loracompose.data.dataset",
         "loracompose.data.mixing", "loracompose.data.split", "loracompose.data.userfiles")
_DERIVED = ("loracompose.experiments.stages:_derived_dataset",)  # the multi set's combined training file
_BANK = ("loracompose.models", "loracompose.modules", "loracompose.compose.bank", "loracompose.compose.fused",
         "loracompose.experiments.stages:_inference_base", "loracompose.experiments.stages:_bank")
# Modules that decide no stage's output, so not listed: the package's __init__ (its version string),
# errors (messages), paths (atomic writes, cache locations), progress (bars), provenance (the commit
# recorded beside results).
UNCOUNTED = ("loracompose", "loracompose.errors", "loracompose.paths", "loracompose.progress",
             "loracompose.provenance")
# What computes each stage's output.
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "data": (*_DATA, *_DERIVED),
    "train": (*_DATA, *_DERIVED, "loracompose.train", "loracompose.packing", "loracompose.checkpoints",
              "loracompose.models", "loracompose.modules", "loracompose.experiments.spec:train_config",
              "loracompose.experiments.stages:_train_config", "loracompose.experiments.stages:_attribute",
              "loracompose.experiments.stages:run_train"),
    "compose": (*_DATA, *_BANK, "loracompose.compose.merge", "loracompose.compose.export",
                "loracompose.compose.weight_methods", "loracompose.compose.methods", "loracompose.compose.plan",
                "loracompose.compose.learn", "loracompose.packing",
                "loracompose.decoding", "loracompose.generate", "loracompose.prompts",
                "loracompose.experiments.stages:run_compose"),
    "generate": (*_DATA, *_BANK, "loracompose.generate", "loracompose.decoding", "loracompose.prompts",
                 "loracompose.compose.merge", "loracompose.compose.export", "loracompose.compose.weight_methods",
                 "loracompose.compose.methods", "loracompose.compose.plan",
                 "loracompose.experiments.stages:_composition", "loracompose.experiments.stages:run_generate"),
    "evaluate": (*_DATA, "loracompose.models", *(f"loracompose.evaluate.{m}" for m in (
                     "attributes", "calibration", "diversity", "ensemble", "features", "generations", "hand_written", "hf_judge",
                     "judges", "lexicon", "linear", "metrics", "panel", "perplexity", "significance")),
                 "loracompose.experiments.spec:EvaluateSettings", "loracompose.experiments.stages:_reference_model",
                 "loracompose.experiments.stages:run_evaluate"),
}


def module_file(module: str) -> Path:
    """The source file of a loracompose module (`loracompose.compose.merge` → compose/merge.py)."""
    parts = module.split(".")[1:]
    path = _PACKAGE.joinpath(*parts).with_suffix(".py") if parts else _PACKAGE / "__init__.py"
    if not path.is_file():
        path = _PACKAGE.joinpath(*parts, "__init__.py")
    if not path.is_file():
        raise LookupError(f"STAGE_CODE names {module}, which has no source file under {_PACKAGE}")
    return path


def _code(unit: str) -> str:
    """A code unit's syntax tree as text: `module` (its whole file) or `module:name` (one top-level def)."""
    module, _, name = unit.partition(":")
    tree = ast.parse(module_file(module).read_text())
    if not name:
        return ast.dump(tree)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return ast.dump(node)
    raise LookupError(f"STAGE_CODE names {unit}, but {module} defines no top-level {name}")


@functools.lru_cache(maxsize=None)
def code_hash(stage: str) -> str:
    """SHA-256 of the code units of STAGE_CODE[stage] (read once per process)."""
    digest = hashlib.sha256()
    for unit in STAGE_CODE[stage]:
        digest.update(f"{unit}\0{_code(unit)}\0".encode())
    return digest.hexdigest()


def content_key(stage: str, inputs: dict) -> str:
    blob = json.dumps({"stage": stage, "code": code_hash(stage), **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:KEY_LENGTH]


def stage_path(workdir: str | Path, stage: str, key: str) -> Path:
    suffix = {"learn": ".json", "data": ".jsonl", "generate": ".jsonl", "evaluate": ".json"}.get(stage, "")
    return Path(workdir) / "cache" / stage / f"{key}{suffix}"


def write_json(path: Path, value) -> Path:
    return write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")
