"""The plan runs piece by piece: model by model, task by task, each unit after the units it reads."""

from __future__ import annotations

import pytest

from loracompose.experiments import plan
from loracompose.experiments.spec import parse_spec

SPEC = {"name": "pieces", "models": ["smollm2-135m", "gemma3-270m"], "prompts": ["pplm"], "max_prompts": 2,
        "seeds": [1, 2], "samples": 3,
        "tasks": [{"set": "sentiment", "targets": ["positive"], "datasets": ["rotten_tomatoes", "tweets"],
                   "conditions": ["single", "output-sum"], "samples": 20},
                  {"set": "sentiment", "targets": ["positive"], "datasets": ["rotten_tomatoes", "tweets"],
                   "conditions": ["base", "weights-average", "output-sum"]}]}


@pytest.fixture()
def built(monkeypatch):
    monkeypatch.setattr(plan, "dataset_hash", lambda name: f"hash-of-{name}")
    return plan.build_plan(parse_spec(SPEC))


def test_units_run_model_by_model_then_task_by_task(built):
    models = [u.model for u in built.units]
    assert models == sorted(models, key=["smollm2-135m", "gemma3-270m"].index)  # no interleaving
    first = [u for u in built.units if u.model == "smollm2-135m"]
    # the first task's trains and cells all come before anything of the second task
    second_task_start = next(i for i, u in enumerate(first) if u.kind == "compose" or getattr(u, "samples", 0) == 3)
    assert all(u.kind == "train" or u.samples == 20 for u in first[:second_task_start])
    assert all(u.kind != "train" for u in first[second_task_start:])  # its modules were trained for task 1
    done = set()
    for unit in built.units:
        assert set(unit.deps) <= done, unit.title
        done.add(unit.key)


def test_a_task_sets_its_own_samples_and_a_repeated_cell_runs_once(built):
    cells = [u for u in built.cells if u.model == "smollm2-135m"]
    by_samples = {(u.condition, u.samples) for u in cells}
    assert by_samples == {("single:rotten_tomatoes", 20), ("single:tweets", 20), ("output-sum", 20),
                          ("base", 3), ("weights-average", 3), ("output-sum", 3)}
    keys = [u.key for u in built.units]
    assert len(keys) == len(set(keys))
    assert len(cells) == 6 * 2  # six conditions × two seeds of one prompt set
    again = plan.build_plan(parse_spec({**SPEC, "tasks": [SPEC["tasks"][0], SPEC["tasks"][0]]}))
    assert len(again.cells) == 2 * 3 * 2  # the second, identical task adds nothing
