"""Shared fixtures: the tests' own cache directory, a tiny random llama (fast training tests), small data files."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from loracompose.paths import CACHE_ENV

logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

# Cache subdirectories that hold only conversions of installed package files (the dequantised
# packaged models, the assembled GGUF, the unzipped mpnet encoder) and the built-in judge panels
# (keyed by settings, data hashes and encoder versions). Rebuilding them costs minutes per run
# (SmolLM2 ~30 s, each panel about a minute), so they persist between test runs in a directory of
# the tests' own; everything else the code caches starts empty in each session.
SHARED_BETWEEN_RUNS = ("models", "gguf", "encoders", "judges")
TEST_CACHE_ENV = "LORACOMPOSE_TEST_CACHE"  # where those persist (default: a folder under the temp dir)


@pytest.fixture(scope="session", autouse=True)
def test_cache(tmp_path_factory) -> Path:
    """Point loracompose's cache at a fresh per-session folder, never the user's cache.

    Set through the environment, so subprocesses (the CLI, the benchmark harness) use it too.
    """
    default = Path(tempfile.gettempdir()) / f"loracompose-tests-{os.getuid()}"
    persistent = Path(os.environ.get(TEST_CACHE_ENV) or default)
    session = tmp_path_factory.mktemp("loracompose-cache")
    for name in SHARED_BETWEEN_RUNS:
        (persistent / name).mkdir(parents=True, exist_ok=True)
        (session / name).symlink_to(persistent / name, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(session))
        yield session


@pytest.fixture(scope="session")
def smollm2_dir(test_cache) -> Path:
    """The packaged SmolLM2, dequantised into the tests' cache (about 30 s the first time, then reused)."""
    from loracompose.models import convert_packaged

    return convert_packaged("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_dir) -> Path:
    """A 2-layer llama with hidden size 64 and random weights, with SmolLM2's tokenizer (see loracompose.testing)."""
    from loracompose.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), tokenizer_dir=smollm2_dir)


@pytest.fixture()
def labelled_frame() -> pd.DataFrame:
    """40 short texts, 20 per label, plus one duplicate and one HTML line break."""
    good = [f"A wonderful film number {i}, truly great." for i in range(20)]
    bad = [f"A dreadful film number {i}, truly awful." for i in range(20)]
    frame = pd.DataFrame({"review": good + bad + [good[0]], "stars": ["good"] * 20 + ["bad"] * 20 + ["good"]})
    frame.loc[1, "review"] = "Line one<br /><br />line two"
    return frame
