"""`loracompose run SPEC`: plan the grid, execute its units, store every result.

Progress: a bar per stage kind (train, compose, cells) and an overall bar whose
ETA weighs each unit by its work in tokens (training: steps × batch × sequence
length × 3 for forward and backward; a cell: its generated tokens, `workload.unit_tokens`).
A log file per run goes to `<workdir>/logs/`.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from loracompose.experiments.executors import InProcessExecutor
from loracompose.experiments.plan import build_plan
from loracompose.experiments.spec import ExperimentSpec
from loracompose.experiments.store import Store
from loracompose.experiments.workload import unit_tokens
from loracompose.progress import progress_bar
from loracompose.provenance import git_commit

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    experiment: str
    units: int
    stages_run: Counter = field(default_factory=Counter)  # stage → how many times it actually ran
    wall_seconds: float = 0.0
    db: Path | None = None
    log: Path | None = None
    run_id: int | None = None


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def _work(unit) -> float:
    """A unit's rough cost in token-steps (for the overall ETA only): a training token costs about three
    generated ones (forward and backward), a merge a fixed 2,000."""
    tokens, _ = unit_tokens(unit)
    if unit.kind == "train":
        return 3.0 * tokens
    return 2000.0 if unit.kind == "compose" else float(tokens)


def _file_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    return handler


def run_experiment(spec: ExperimentSpec, executor=None, *, progress: bool = True) -> RunSummary:
    executor = executor or InProcessExecutor()
    workdir = spec.workdir
    now = datetime.now(timezone.utc)
    log_path = workdir / "logs" / f"{spec.name}-{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}.log"
    handler = _file_log(log_path)
    package_log = logging.getLogger("loracompose")
    package_log.addHandler(handler)
    level = package_log.level
    if package_log.getEffectiveLevel() > logging.INFO:
        package_log.setLevel(logging.INFO)  # the log file gets INFO even when the console shows less
    started = time.perf_counter()
    summary = RunSummary(spec.name, 0, db=spec.db_path, log=log_path)
    store = Store(spec.db_path)
    # The code the run used: HEAD, "+local-changes" when the package has uncommitted edits (None outside git).
    run_id = store.start_run(spec.name, spec.source, executor.name, machine(), now.isoformat(timespec="seconds"),
                             str(log_path), commit=git_commit(dirty_paths=(".",)))
    summary.run_id = run_id
    status = "failed"
    bars = {}
    try:
        plan = build_plan(spec)
        summary.units = len(plan.units)
        log.info("experiment %s: %d modules to train, %d merges, %d cells; executor %s; workdir %s", spec.name,
                 len(plan.trains), len(plan.composes), len(plan.cells), executor.name, workdir)
        counts = {"train": len(plan.trains), "compose": len(plan.composes), "cell": len(plan.cells)}
        bars["overall"] = progress_bar(total=sum(_work(u) for u in plan.units), desc="overall", disable=not progress,
                                       position=0, unit="work", unit_scale=True,
                                       bar_format="{l_bar}{bar}| {percentage:3.0f}% [{elapsed}<{remaining}]")
        for i, (kind, total) in enumerate(counts.items(), start=1):
            bars[kind] = progress_bar(total=total, desc=f"{kind}s", disable=not progress or not total, position=i,
                                      unit=kind)

        def on_done(unit, result: dict) -> None:
            summary.stages_run.update(result["ran"])
            if unit.kind == "cell":
                store.put(result["row"], run_id, datetime.now(timezone.utc).isoformat(timespec="seconds"))
            verb = "done" if result["ran"] else "cached"
            log.info("%s: %s (%s)", verb, unit.title, ", ".join(result["ran"]) or "nothing to do")
            bars[unit.kind].update(1)
            bars["overall"].update(_work(unit))

        executor.execute(plan, workdir, on_done, progress)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        for bar in bars.values():
            bar.close()
        summary.wall_seconds = round(time.perf_counter() - started, 1)
        store.finish_run(run_id, datetime.now(timezone.utc).isoformat(timespec="seconds"), summary.wall_seconds,
                         status, summary.units, dict(summary.stages_run))
        store.close()
        log.info("run %s: %s in %.1f s; stages run: %s", spec.name, status, summary.wall_seconds,
                 dict(summary.stages_run) or "none (all cached)")
        package_log.removeHandler(handler)
        package_log.setLevel(level)
        handler.close()
    return summary
