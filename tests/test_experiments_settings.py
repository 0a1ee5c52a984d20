"""A spec's settings are the library's typed dataclasses, carried unchanged from the spec through the plan."""

from __future__ import annotations

import pickle
import re
import sqlite3
from dataclasses import asdict

import pytest

from loracompose import LoraComposeError
from loracompose.compose.learn import LearnConfig
from loracompose.compose.weight_methods import MergeOptions
from loracompose.decoding import SamplingConfig
from loracompose.evaluate.panel import JudgeSettings
from loracompose.experiments import plan
from loracompose.experiments.spec import (EvaluateSettings, GenerateSettings, LearnSettings, TrainSettings,
                                          parse_spec, train_config)
from loracompose.experiments.store import Store
from loracompose.train import TrainConfig

SPEC = {"name": "typed", "models": ["smollm2-135m"], "prompts": ["pplm"], "max_prompts": 2,
        "tasks": [{"set": "sentiment", "targets": ["positive"], "datasets": ["rotten_tomatoes", "tweets"],
                   "conditions": ["base", "single", "ties"]}],
        "train": {"steps": 7, "rank": 4, "quantize": "none"},
        "generate": {"max_new_tokens": 9, "template": "instruct", "quantize": "nf4"},
        "compose": {"density": 0.3, "merge_seed": 5},
        "learn_weights": {"steps": 3, "examples": 16},
        "evaluate": {"reference": "none", "resamples": 300, "judges": {"embed_per_label": 80}}}


def test_spec_holds_typed_settings():
    spec = parse_spec(SPEC)
    assert spec.train == TrainSettings(steps=7, rank=4, quantize=None)
    assert spec.generate == GenerateSettings(SamplingConfig(max_new_tokens=9), "instruct", "nf4")
    assert spec.compose == MergeOptions(density=0.3, seed=5)  # the spec's merge_seed is MergeOptions.seed
    assert spec.learn_weights == LearnSettings(LearnConfig(steps=3), examples=16)
    assert spec.evaluate == EvaluateSettings(reference=None, resamples=300, judges=JudgeSettings(embed_per_label=80))
    options = spec.evaluate.options()
    assert (options.reference, options.resamples, options.settings.embed_per_label, options.progress) == \
        (None, 300, 80, False)
    defaults = parse_spec({k: SPEC[k] for k in ("name", "models", "tasks")})
    assert defaults.train == TrainSettings() and defaults.generate == GenerateSettings()
    assert defaults.compose == MergeOptions() and defaults.evaluate == EvaluateSettings()


def test_train_config_is_the_settings_plus_the_grid():
    settings = parse_spec(SPEC).train
    config = train_config(settings, model="m", datasets=["a", "b"], label="positive", mixing="balanced")
    assert config == TrainConfig(model="m", datasets=["a", "b"], label="positive", mixing="balanced", steps=7,
                                 rank=4, quantize=None)
    assert pickle.loads(pickle.dumps(settings)) == settings  # Ray ships plan units to workers


def test_plan_units_carry_the_spec_objects_and_keys_hash_them(monkeypatch):
    monkeypatch.setattr(plan, "dataset_hash", lambda name: f"hash-of-{name}")
    spec = parse_spec(SPEC)
    p = plan.build_plan(spec)
    assert all(u.train is spec.train for u in p.trains) and len(p.trains) == 2
    assert [u.settings for u in p.composes] == [spec.compose] and p.composes[0].settings is spec.compose
    assert all(u.generate is spec.generate and u.evaluate is spec.evaluate for u in p.cells)
    # A default spelled out in the spec is the same setting, so the same key.
    spelled = parse_spec({**SPEC, "train": {**SPEC["train"], "alpha": TrainSettings().alpha}})
    assert [u.key for u in plan.build_plan(spelled).trains] == [u.key for u in p.trains]
    assert asdict(spec.train)["alpha"] == TrainSettings().alpha


@pytest.mark.parametrize("field", ["mixing", "attribute", "model"])
def test_grid_fields_are_refused_in_train(field):
    with pytest.raises(LoraComposeError, match=re.escape(f"spec field 'train.{field}': unknown field")):
        parse_spec({**SPEC, "train": {field: "x"}})


def test_a_results_database_from_before_code_versions_opens(tmp_path):
    path = tmp_path / "results.sqlite"
    with sqlite3.connect(path) as db:  # the runs table as it was
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, experiment TEXT NOT NULL, spec TEXT, "
                   "executor TEXT, machine TEXT, started TEXT, finished TEXT, wall_seconds REAL, status TEXT, "
                   "log TEXT, units INTEGER, stages_run TEXT)")
        db.execute("INSERT INTO runs (experiment, status) VALUES ('old', 'done')")
    db.close()
    with Store(path) as store:
        store.start_run("new", "", "inprocess", "m", "2026-01-01T00:00:00", "log", commit="abc")
        assert [(r["experiment"], r["code_version"]) for r in store.runs()] == [("old", None), ("new", "abc")]
