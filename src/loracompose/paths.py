"""Where loracompose keeps what it makes once and reuses (converted models, ...)."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CACHE_ENV = "LORACOMPOSE_CACHE"


def cache_dir() -> Path:
    """`$LORACOMPOSE_CACHE`, else `$XDG_CACHE_HOME/loracompose`, else `~/.cache/loracompose`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "loracompose"


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file beside its final name, then rename it into place.

    A crash leaves either the old file or none, never a truncated one; the
    staging name carries the process id, so two writers do not share it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    staging.write_text(text)
    staging.replace(path)
    return path


@contextmanager
def atomic_directory(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory beside `final`; move it into place only on success.

    A crash or exception inside the block leaves `final` untouched (and the
    staging directory removed), so no directory that looks finished is ever
    half-written. With `overwrite`, an existing `final` is replaced.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        yield staging
        if final.exists():
            if not overwrite:
                raise FileExistsError(final)
            trash = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, trash)
            os.replace(staging, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
