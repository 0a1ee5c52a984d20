"""A two-cell experiment spec on the tiny random model, shared by the experiments tests."""

from __future__ import annotations

import yaml

# The judge caps of test_evaluate_*.py, so all tests share one cached sentiment panel.
JUDGES = {"embed_per_label": 80, "ngram_per_label": 1500, "test_per_label": 100}


def tiny_spec(model_dir, workdir, **overrides) -> dict:
    """sentiment → positive on rotten_tomatoes; conditions base and single:rotten_tomatoes (two cells)."""
    spec = {
        "name": "tiny", "workdir": str(workdir), "models": [str(model_dir)],
        "tasks": [{"set": "sentiment", "targets": ["positive"], "datasets": ["rotten_tomatoes"],
                   "conditions": ["base", "single"]}],
        "prompts": ["pplm"], "max_prompts": 3, "seeds": [0], "samples": 2,
        "train": {"steps": 3, "batch_size": 2, "seq_len": 32, "eval_every": 0, "eval_rows": 2,
                  "save_every": 1, "warmup_steps": 0, "learning_rate": 1e-2},
        "generate": {"max_new_tokens": 6, "batch_size": 8},
        "evaluate": {"reference": str(model_dir), "resamples": 200, "judges": dict(JUDGES)},
    }
    spec.update(overrides)
    return spec


def write_spec(path, spec: dict):
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path
