"""The code version a result was made with, for the provenance of metrics and benchmarks."""

from __future__ import annotations

import subprocess
from pathlib import Path

_SOURCE = Path(__file__).resolve().parent


def git_commit(cwd: str | Path = _SOURCE, dirty_paths: tuple[str, ...] = ()) -> str | None:
    """HEAD of the checkout at `cwd` (default: this package's), or None outside git.

    With `dirty_paths` (relative to the repository's root, e.g. "src"), "+local-changes"
    is appended when any of them has uncommitted changes, so a figure measured on edited
    code says so.
    """
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0 or not head.stdout.strip():
            return None
        # ":(top)" reads each path from the repository's root, not from `cwd`
        top = [":(top)" + ("" if path in (".", "./") else path) for path in dirty_paths]
        dirty = bool(dirty_paths) and bool(git("status", "--porcelain", "--", *top).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+local-changes" if dirty else "")
