"""Figure 4 — serving: requests/s and p50/p95 latency under a bounded loopback load.

    mixed    each request carries one of the 16 mixed-batch compositions (drawn by a seeded generator)
    shared   every request carries the same composition (the largest of those 16)

The server runs in this process's background (`loracompose.serve.background.serve_in_background`)
and `run_load_test` drives it over loopback. The figure needs the serving
package (`loracompose.serve`); without it, it is recorded as skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from benchmarks.common import Settings, prepare_modules
from benchmarks.mixed_batch import compositions


def missing_reason() -> str | None:
    """Why the figure cannot run here, or None."""
    try:
        found = importlib.util.find_spec("loracompose.serve.loadtest") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        return "loracompose.serve.loadtest is not in this checkout (the serving issue has not landed)"
    return None


def run(settings: Settings, model_dir: str) -> dict:
    reason = missing_reason()
    if reason:
        return {"skipped": reason}
    from loracompose.serve.background import serve_in_background
    from loracompose.serve.loadtest import run_load_test

    clients, requests, max_tokens = (4, 16, 4) if settings.quick else (32, 200, 16)
    with tempfile.TemporaryDirectory() as tmp:
        paths, modules = prepare_modules(settings, model_dir, Path(tmp))
        modules_dir = Path(tmp) / "bank"
        modules_dir.mkdir()
        for name, path in paths.items():
            (modules_dir / name).symlink_to(path.resolve())
        mixed = [{"modules": c, "method": "output-sum"} for c in compositions(list(paths), settings.mixed_requests)]
        loads = {"mixed": mixed, "shared": [mixed[len(mixed) - 1]]}
        results = {}
        with serve_in_background(settings.model, str(modules_dir), judges="none") as url:  # no judge load
            for name, comps in loads.items():
                results[name] = run_load_test(url, comps, clients=clients, requests=requests,
                                              max_tokens=max_tokens, seed=0)
                if not results[name]["ok"]:
                    raise RuntimeError(f"no {name}-composition request succeeded: {results[name]['statuses']}")
    mixed_rps, shared_rps = results["mixed"].get("requests_per_s"), results["shared"].get("requests_per_s")
    return {"setting": {"clients": clients, "requests": requests, "max_tokens": max_tokens,
                        "compositions_mixed": len(mixed)},
            "modules": modules, **results,
            "ratio_mixed_over_shared_requests_per_s": mixed_rps / shared_rps if mixed_rps and shared_rps else None}
