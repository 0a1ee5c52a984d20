"""A quiet command line: library warnings only with -v."""

from __future__ import annotations

import subprocess
import sys

from loracompose.testing import random_adapter

BNB_NOTE = "Failed to load CPU gemm_4bit_forward from kernels-community"

# The two kinds of noise, emitted from inside a command as the libraries emit them: bitsandbytes
# logs its note through `logging` (bitsandbytes/backends/cpu/ops.py, at import, on CPUs with
# AVX512-BF16 when the `kernels` package cannot load its kernel); transformers raises FutureWarnings.
NOISY_COMMAND = f"""
import logging, sys, warnings
from loracompose import cli

def noisy(args):
    logging.getLogger("bitsandbytes.backends.cpu.ops").warning("{BNB_NOTE}: (test)")
    warnings.warn("`is_gradient_checkpointing` is deprecated (test)", FutureWarning)
    logging.getLogger("loracompose.test").info("our own line")

cli.cmd_data_list = noisy
sys.exit(cli.main(sys.argv[1:] + ["data", "list"]))
"""


def run_cli(*args: str, script: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", script, *args] if script else [sys.executable, "-m", "loracompose.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_library_warnings_show_only_with_verbose():
    quiet = run_cli(script=NOISY_COMMAND)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "our own line\n"  # our INFO lines stay
    loud = run_cli("-v", script=NOISY_COMMAND)
    assert loud.returncode == 0, loud.stderr
    assert f"{BNB_NOTE}: (test)" in loud.stderr
    assert "FutureWarning: `is_gradient_checkpointing` is deprecated (test)" in loud.stderr  # via logging
    assert "our own line" in loud.stderr


def test_help_and_a_real_command_write_nothing_but_their_own_lines(tiny_model_dir, tmp_path):
    assert run_cli("--help").stderr == ""
    random_adapter(tiny_model_dir, tmp_path / "modules" / "pos", seed=3)
    command = ["generate", "--model", str(tiny_model_dir), "--modules", str(tmp_path / "modules"), "--compose",
               "pos=1", "--prompt", "The lake", "--max-new-tokens", "2", "--out", str(tmp_path / "g.jsonl")]
    quiet = run_cli(*command)
    assert quiet.returncode == 0, quiet.stderr
    assert "Warning" not in quiet.stderr and BNB_NOTE not in quiet.stderr and "Loading weights" not in quiet.stderr
    # (bitsandbytes says its note only on some CPUs: -v is checked on the emitted records above)
