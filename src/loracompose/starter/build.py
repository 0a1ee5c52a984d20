"""Train the starter modules described by a YAML file (configs/starter.yaml).

    python -m loracompose.starter.build configs/starter.yaml [--only positive,negative] [--overwrite]

Each module is trained with `train_module` (QLoRA on the NF4 base), its adapter
tensors are stored in bfloat16 (half the bytes; the fused layers compute in the
base's dtype, so this only rounds the update to bfloat16's 8-bit mantissa), and its
`loracompose.json` gains a `build` record: the command, the code commit, the
config file's SHA-256, and the settings. Modules already built are skipped, so a
killed build continues where it stopped. `snapshots: [steps...]` also saves the
adapter at those steps (of the same run, so at the cosine schedule's learning rate
there) under `snapshots_dir/<name>/step-N`, for the steps-vs-accuracy curve.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from loracompose.errors import LoraComposeError
from loracompose.modules import ADAPTER_WEIGHTS, METADATA_FILE, module_name, write_metadata
from loracompose.provenance import git_commit


def _snapshot_callback(steps: list[int], directory: Path):
    from transformers import TrainerCallback

    class Snapshots(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in steps:
                model.save_pretrained(directory / f"step-{state.global_step}")

    return Snapshots()


def to_bfloat16(directory: Path) -> None:
    """Rewrite the adapter's tensors in bfloat16, in place."""
    file = directory / ADAPTER_WEIGHTS
    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in load_file(str(file)).items()}
    save_file(tensors, str(file), metadata={"format": "pt"})


def load_spec(path: Path) -> dict:
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LoraComposeError(f"cannot read starter config '{path}': {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("modules"), list):
        raise LoraComposeError(f"starter config '{path}' needs a 'modules' list")
    return spec


def build(config_path: Path, only: set[str] | None = None, overwrite: bool = False) -> list[Path]:
    from loracompose.train import TrainConfig, train_module

    spec = load_spec(config_path)
    out_root, snapshots_root = Path(spec["out"]), Path(spec.get("snapshots_dir", "runs/starter/snapshots"))
    config_sha = hashlib.sha256(config_path.read_bytes()).hexdigest()
    command = " ".join(["python -m loracompose.starter.build", *map(shlex.quote, sys.argv[1:])])
    built = []
    for entry in spec["modules"]:
        entry = dict(entry)
        snapshots = [int(s) for s in entry.pop("snapshots", [])]
        config = TrainConfig(model=spec["model"], **{**spec.get("defaults", {}), **entry})
        name = module_name(config.label, config.datasets)
        if only and config.label not in only and name not in only:
            continue
        out = out_root / name
        if (out / METADATA_FILE).is_file() and not overwrite:
            print(f"{name}: already built, skipped ({out})")
            continue
        callbacks = [_snapshot_callback(snapshots, snapshots_root / name)] if snapshots else []
        trained = train_module(config, out, overwrite=True, callbacks=callbacks)
        to_bfloat16(out)
        metadata = json.loads((out / METADATA_FILE).read_text())
        metadata.pop("format", None)
        commit = git_commit(dirty_paths=("src", "configs", "pyproject.toml"))  # "+local-changes" if edited
        metadata["build"] = {"command": command, "commit": commit, "config": str(config_path),
                             "config_sha256": config_sha, "adapter_dtype": "bfloat16",
                             "snapshots": [str(snapshots_root / name / f"step-{s}") for s in snapshots]}
        write_metadata(out, metadata)
        t = trained.metadata["training"]
        print(f"{name}: {t['steps']} steps in {t['seconds']:.0f} s, loss {t['first_train_loss']:.3f} → "
              f"{t['train_loss']:.3f}")
        built.append(out)
    return built


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loracompose.starter.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="starter YAML, e.g. configs/starter.yaml")
    parser.add_argument("--only", default=None, help="comma-separated labels or module names to build")
    parser.add_argument("--overwrite", action="store_true", help="rebuild modules that already exist")
    args = parser.parse_args(argv)
    try:
        build(args.config, {s.strip() for s in args.only.split(",")} if args.only else None, args.overwrite)
    except LoraComposeError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
