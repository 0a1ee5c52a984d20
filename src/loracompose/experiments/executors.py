"""Executors: run a plan's units in dependency order and hand each result back to the driver.

    inprocess  one unit after another in this process (the default; models stay loaded between units)
    ray        each unit a Ray task with its CPU/GPU needs, started as soon as the units it reads are done:
               independent modules train side by side, independent cells generate side by side. Connects
               to RAY_ADDRESS when set (an existing cluster: the working directory must then be on storage
               every node sees), else starts a local instance. Results come back to the driver, which alone
               writes the results database.

Both call the same `stages.run_unit`, whose stages skip what is on disk, so the
two executors produce the same files and the same results.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from loracompose.errors import LoraComposeError
from loracompose.experiments.plan import Plan
from loracompose.experiments.stages import run_unit

Done = Callable[[object, dict], None]  # (unit, result) → None, called in the driver


class InProcessExecutor:
    name = "inprocess"

    def execute(self, plan: Plan, workdir: Path, on_done: Done, progress: bool = True) -> None:
        for unit in plan.units:  # the spec's order, piece by piece; a unit follows those it reads
            on_done(unit, run_unit(unit, workdir, progress))


def _ray_unit(unit, workdir: str, *dependencies):
    """A Ray task: the dependencies are passed only so Ray starts this after them."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    return run_unit(unit, workdir, progress=False)


@dataclass
class RayExecutor:
    cpus_per_task: float = 1.0  # Ray sets OMP_NUM_THREADS to this in each worker
    gpus_per_task: float = 0.0  # e.g. 1 on a GPU cluster (merges and learn-weights never ask for one)
    num_cpus: int | None = None  # CPUs of a local instance (None: all of this machine's)
    name: str = "ray"

    def execute(self, plan: Plan, workdir: Path, on_done: Done, progress: bool = True) -> None:
        try:  # Ray is an optional extra ('experiments'): imported only when this executor runs
            import ray
        except ImportError:
            raise LoraComposeError("--executor ray needs Ray: pip install 'loracompose[experiments]'") from None
        started_here = not ray.is_initialized()
        if started_here:
            address = os.environ.get("RAY_ADDRESS")
            ray.init(address=address or None, num_cpus=None if address else self.num_cpus,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            remote = ray.remote(_ray_unit)
            refs, units = {}, {}
            for unit in plan.units:
                deps = [refs[k] for k in unit.deps if k in refs]
                options = {"num_cpus": self.cpus_per_task, "max_retries": 0,
                           "num_gpus": 0 if unit.kind == "compose" else self.gpus_per_task}
                refs[unit.key] = remote.options(**options).remote(unit, str(Path(workdir).resolve()), *deps)
                units[refs[unit.key]] = unit
            pending = list(units)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
                    if isinstance(cause, LoraComposeError):
                        raise LoraComposeError(f"{units[done[0]].title}: {cause}") from None
                    raise
                on_done(units[done[0]], result)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(name: str, **options):
    if name == "inprocess":
        return InProcessExecutor()
    if name == "ray":
        return RayExecutor(**{k: v for k, v in options.items() if v is not None})
    raise LoraComposeError(f"unknown executor '{name}'; accepted: inprocess, ray")
