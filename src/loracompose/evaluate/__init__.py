"""Evaluation of generations: attribute judges, fluency, diversity, significance.

    judges      attributes.py, features.py, linear.py, judges.py, hf_judge.py, panel.py, ensemble.py
    fluency     perplexity.py
    diversity   diversity.py
    tests       significance.py
    a file      generations.py → metrics.py (evaluate_generations) → compare.py
    directions  directions.py (evaluate_directions: toward each label, the mean), calibration.py
    CLI         cli.py (`evaluate`, `compare`, `judges`)

Names are imported lazily, so `loracompose --help` does not load numpy and pandas.
"""

from importlib import import_module

_EXPORTS = {
    "EvalOptions": "metrics", "evaluate_generations": "metrics", "write_metrics": "metrics",
    "evaluate_directions": "directions",
    "JudgePanel": "panel", "JudgeSettings": "panel", "judge_panel": "panel",
    "format_table": "compare", "read_metrics": "compare",  # compare() itself: loracompose.evaluate.compare.compare
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"loracompose.evaluate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'loracompose.evaluate' has no attribute {name!r}")
