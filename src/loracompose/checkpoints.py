"""Training checkpoints that survive a crash: written atomically, resumed only when complete.

    <out>.training/
      run.json                 the settings a resume must share
      checkpoint-8/            complete: trainer_state.json (written last) parses
      checkpoint-12/           ...
      .staging/checkpoint-16/  being written; renamed into place only once whole

A kill, a full disk or any error while a checkpoint is written leaves the earlier
checkpoints as they were and at most a staging directory, which resume ignores.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
from pathlib import Path

from loracompose.errors import LoraComposeError

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"  # transformers writes it after the weights, optimizer, scheduler and RNG state
STAGING = ".staging"
KEEP = 2  # complete checkpoints kept


def _step(path: Path) -> int:
    return int(path.name.rsplit("-", 1)[-1])


def is_complete(checkpoint: Path) -> bool:
    try:
        json.loads((checkpoint / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return True


def complete_checkpoints(work: Path) -> list[Path]:
    """The complete checkpoints in `work`, oldest first."""
    found = [p for p in Path(work).glob("checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    return sorted((p for p in found if is_complete(p)), key=_step)


def latest_complete(work: Path) -> Path | None:
    checkpoints = complete_checkpoints(work) if Path(work).is_dir() else []
    return checkpoints[-1] if checkpoints else None


def drop_partial(work: Path) -> None:
    """Remove what a crash left half-written: the staging directory and incomplete checkpoints."""
    shutil.rmtree(Path(work) / STAGING, ignore_errors=True)
    for path in Path(work).glob("checkpoint-*"):
        if path.is_dir() and not is_complete(path):
            log.info("ignoring the incomplete checkpoint %s", path.name)
            shutil.rmtree(path, ignore_errors=True)


def atomic_trainer(trainer_class):
    """`trainer_class` whose checkpoints are written into `.staging/` and renamed into place when whole."""

    class AtomicCheckpoints(trainer_class):
        def _save_checkpoint(self, model, trial):
            work = Path(self.args.output_dir)
            staging = work / STAGING
            shutil.rmtree(staging, ignore_errors=True)
            self.args.output_dir = str(staging)
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self.args.output_dir = str(work)
            for written in staging.glob("checkpoint-*"):
                final = work / written.name
                if final.exists():  # a resumed run saves the step an incomplete checkpoint had
                    shutil.rmtree(final)
                os.replace(written, final)
            shutil.rmtree(staging, ignore_errors=True)
            for old in complete_checkpoints(work)[:-KEEP]:
                shutil.rmtree(old, ignore_errors=True)

    return AtomicCheckpoints


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(out: Path, work: Path) -> LoraComposeError:
    drop_partial(work)
    latest = latest_complete(work)
    where = f"from {latest.name}" if latest else "from the start (no checkpoint was complete)"
    return LoraComposeError(f"no space left on the device while training '{out}'; free some space and run the same "
                            f"command with --resume: it continues {where} in '{work}'")


def finite_history(history: list[dict]) -> list[dict]:
    """Log entries as JSON can hold them: a NaN or Inf value becomes null (JSON has no NaN)."""
    return [{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in entry.items()}
            for entry in history]


def divergence_guard():
    """A callback that stops training at the first logged non-finite training loss (and remembers it)."""
    from transformers import TrainerCallback

    class DivergenceGuard(TrainerCallback):
        def __init__(self):
            self.diverged: tuple[int, float] | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            loss = (logs or {}).get("loss")
            if isinstance(loss, float) and not math.isfinite(loss) and self.diverged is None:
                self.diverged = (state.global_step, loss)
                control.should_training_stop = True
                control.should_save = False
            return control

    return DivergenceGuard()
