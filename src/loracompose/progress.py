"""Progress bars: tqdm on a terminal, periodic log lines elsewhere; the training bar shows the loss.

A tqdm bar redraws itself with carriage returns and cursor moves, which garble a log file or a
CI log. When stderr is not a terminal, `progress_bar` keeps tqdm's counting, rate and ETA but
sends each redraw, at most one every `LOG_INTERVAL_S` seconds (tqdm's own `mininterval`), to
the "loracompose.progress" logger as one plain line. Written by hand: tqdm.contrib.logging
only redirects log records *into* a bar, not a bar into the log.
"""

from __future__ import annotations

import logging
import re
import sys

from tqdm.auto import tqdm
from transformers import TrainerCallback

LOG_INTERVAL_S = 30.0  # off a terminal: one line per bar at most this often, plus its first and last
log = logging.getLogger(__name__)
_CONTROL = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # tqdm's cursor moves for stacked bars (position > 0)


def on_terminal() -> bool:
    """Whether stderr, where bars are drawn, is an interactive terminal."""
    return sys.stderr.isatty()


class _LogLines:
    """A file for tqdm that turns each redraw into one log line (no \\r, no escape codes, no blank lines)."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> None:
        for part in re.split(r"[\r\n]", _CONTROL.sub("", text)):
            if part.strip():
                self.logger.info(part.strip())

    def flush(self) -> None:
        pass


def progress_bar(iterable=None, *, disable: bool = False, terminal: bool | None = None, **kwargs) -> tqdm:
    """A tqdm bar over `iterable` (or `total=`), drawn on a terminal or logged as periodic lines.

    `terminal` (default: whether stderr is one) picks the mode. Off a terminal, `position` and
    `dynamic_ncols` are dropped: there is no screen to arrange bars on.
    """
    if not disable and not (on_terminal() if terminal is None else terminal):
        for key in ("position", "dynamic_ncols", "ncols"):
            kwargs.pop(key, None)
        kwargs.update(file=_LogLines(log), mininterval=LOG_INTERVAL_S, ascii=True)
    return tqdm(iterable, disable=disable, **kwargs)


class LossProgressCallback(TrainerCallback):
    """One bar over optimiser steps, with the latest train and validation loss."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self.redraw = True
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if self.enabled:
            self.redraw = on_terminal()  # a log line per loss report would flood the log
            self.bar = progress_bar(total=state.max_steps, initial=state.global_step, desc="training", unit="step",
                                    dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        if "loss" in logs:
            self.postfix["loss"] = f"{logs['loss']:.3f}"
        if "eval_loss" in logs:
            self.postfix["val_loss"] = f"{logs['eval_loss']:.3f}"
        self.bar.set_postfix(self.postfix, refresh=self.redraw)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
