"""Progress: a tqdm bar on a terminal; off one (a file, a pipe, a CI log), periodic log lines without \\r."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest
from tqdm.auto import tqdm

from loracompose import progress
from loracompose.progress import LossProgressCallback, progress_bar


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture()
def stderr(monkeypatch):
    """stderr as a file (isatty() is False); the test reads what was drawn on it."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


@pytest.fixture()
def lines(caplog):
    caplog.set_level(logging.INFO, logger="loracompose.progress")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "loracompose.progress"]


def test_off_a_terminal_a_bar_is_its_first_and_last_state_and_one_line_per_interval(stderr, lines, monkeypatch):
    # tqdm reads its clock through tqdm.std.time; each reading is 10 s after the last
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("tqdm.std.time", lambda: next(clock))
    bar = progress_bar(range(12), desc="scoring", unit="text")
    assert list(bar) == list(range(12))
    got = lines()
    assert got[0].startswith("scoring:   0%") and got[-1].startswith("scoring: 100%") and "12/12" in got[-1]
    # 12 updates 10 s apart against a 30 s interval: a line every third update at most, never one per update
    assert 3 <= len(got) <= 2 + 12 * 10 // progress.LOG_INTERVAL_S
    assert all("\r" not in line and "\x1b" not in line for line in got)
    assert stderr.getvalue() == ""  # nothing drawn on stderr itself


def test_stacked_bars_off_a_terminal_log_plain_lines(stderr, lines):
    bars = [progress_bar(total=2, desc=f"bar{i}", position=i, dynamic_ncols=True) for i in range(3)]
    for bar in bars:
        bar.update(2)
        bar.close()
    got = lines()
    assert {line.split(":")[0] for line in got} == {"bar0", "bar1", "bar2"}
    assert all(line == line.strip() and "\x1b" not in line and "\r" not in line for line in got)
    assert stderr.getvalue() == ""


def test_on_a_terminal_it_is_tqdm_drawing_on_stderr(monkeypatch, lines):
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    bar = progress_bar(total=3, desc="x")
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert "\r" in screen.getvalue() and lines() == []  # redrawn in place, not logged


def test_disabled_bar_says_nothing(stderr, lines):
    assert list(progress_bar(range(3), disable=True)) == [0, 1, 2]
    assert lines() == [] and stderr.getvalue() == ""


def test_training_progress_off_a_terminal_ends_with_the_last_losses(stderr, lines):
    callback = LossProgressCallback()
    state = SimpleNamespace(max_steps=4, global_step=0)
    callback.on_train_begin(None, state, None)
    for step in range(1, 5):
        state.global_step = step
        callback.on_step_end(None, state, None)
        callback.on_log(None, state, None, logs={"loss": 3.0 - step / 4})
    callback.on_log(None, state, None, logs={"eval_loss": 2.5})
    callback.on_train_end(None, state, None)
    got = lines()
    assert len(got) <= 3  # 4 steps and 5 loss reports within one interval: first, last, not one per report
    assert got[-1].startswith("training: 100%") and got[-1].endswith("loss=2.000, val_loss=2.500]")
    assert stderr.getvalue() == ""


def test_the_command_line_logs_progress_when_stderr_is_a_pipe():
    # A command that counts through a bar, run as a user would with stderr captured (not a terminal):
    # the CLI's logging shows progress as plain lines without -v.
    script = """
import sys
from loracompose import cli
from loracompose.progress import progress_bar

cli.cmd_data_list = lambda args: [None for _ in progress_bar(range(5), desc="counting", unit="item")]
sys.exit(cli.main(["data", "list"]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    counted = [line for line in done.stderr.splitlines() if line.startswith("counting:")]
    assert counted[0].startswith("counting:   0%") and counted[-1].startswith("counting: 100%"), done.stderr
    assert "5/5" in counted[-1] and "\r" not in done.stderr
