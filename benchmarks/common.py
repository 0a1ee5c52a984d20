"""Shared pieces of the benchmark figures: statistics, machine record, models and modules to time.

Every figure times its configurations side by side in one process (or, for
training, in one run of child processes), repeats each timing, and reports the
median with its spread (interquartile range, min, max) and ratios to a reference
measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from loracompose.paths import write_text_atomic
from loracompose.provenance import git_commit
from loracompose.testing import random_adapter

REPO = Path(__file__).resolve().parent.parent
STARTER_MODULES = REPO / "src" / "loracompose" / "starter" / "smollm2-135m"  # shipped with the package


@dataclass(frozen=True)
class Settings:
    """How much each figure measures; `quick` is the CI smoke setting on the tiny model."""

    model: str  # model spec (packaged name or model directory)
    quick: bool
    quantize: tuple[str, ...] = ("none", "nf4")  # decode-step bases
    ns: tuple[int, ...] = (1, 2, 3, 5, 8)  # modules composed
    decode_batch: tuple[int, ...] = (1, 8)  # sequences per decode step
    repeats: int = 5  # timed runs of each configuration, interleaved
    steps: int = 8  # decode steps per run
    prefill: int = 16  # prompt tokens before the timed steps
    mixed_requests: int = 16  # mixed-batch figure: requests, each its own composition
    new_tokens: int = 16  # mixed-batch figure: tokens per request
    train_steps: int = 6  # training figure: steps per run (the first is warm-up, not timed)
    train_datasets: tuple[str, ...] = ("tweets", "imdb")
    eval_texts: int = 64  # evaluation figure: texts judged and scored
    modules_dir: str | None = None  # real modules to compose (default: the smollm2-135m starter modules)
    bank: int = 64  # floor figure: modules in the large bank (3 of them active)
    floor_batch: int = 1  # floor figure: sequences per decode step
    loop_tokens: int = 64  # floor figure: tokens the sampling loop makes per run


def summary(values: list[float], scale: float = 1.0) -> dict:
    """median, interquartile range, min, max and count of `values` (times `scale`)."""
    values = [v * scale for v in values]
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "iqr": q[2] - q[0], "min": min(values), "max": max(values),
            "n": len(values)}


def ratio(numerator: dict, denominator: dict) -> float:
    return numerator["median"] / denominator["median"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict:
    """CPU, cores, memory, accelerator, library versions, date and code version of this run."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "loracompose"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": git_commit(REPO, dirty_paths=("src", "benchmarks")),
        "command": " ".join([Path(sys.executable).name, "-m", "benchmarks.run", *sys.argv[1:]]),
    }


def prepare_modules(settings: Settings, model_dir: str, scratch: Path) -> tuple[dict[str, Path], dict]:
    """max(ns) modules for the base: the real ones first, then random ones to fill up.

    Returns the paths by name and a record of which is which.
    """
    from loracompose.compose.bank import discover_modules
    from loracompose.modules import read_module

    wanted = max(settings.ns)
    real: dict[str, Path] = {}
    source = settings.modules_dir or (str(STARTER_MODULES) if STARTER_MODULES.is_dir() and not settings.quick else None)
    if source:
        for name, path in discover_modules(source).items():
            info = read_module(path)
            base_path = str(info.adapter_config.get("base_model_name_or_path", ""))
            if Path(base_path).name == Path(model_dir).name or settings.modules_dir:
                real[name] = path
    paths = dict(list(real.items())[:wanted])
    for i in range(wanted - len(paths)):
        # same rank, alpha and targets as the starter modules, so each costs what a trained module costs
        paths[f"random-{i}"] = random_adapter(model_dir, scratch / f"random-{i}", seed=1000 + i, rank=8,
                                              alpha=16.0, targets="all-linear", b_std=0.02)
    record = {"real": [n for n in paths if n in real], "random": [n for n in paths if n not in real],
              "random_kind": "PEFT LoRA rank 8, alpha 16, all linear projections, init_lora_weights=False, "
                             "B ~ N(0, 0.02²), torch seed 1000+i",
              "source": source}
    return paths, record


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2))
