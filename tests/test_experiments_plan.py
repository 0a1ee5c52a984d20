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


def test_workload_counts_tokens_and_what_the_workdir_already_holds(monkeypatch, tmp_path):
    from loracompose.experiments.cache import stage_path
    from loracompose.experiments.workload import format_workload, workload
    from loracompose.modules import METADATA_FILE

    monkeypatch.setattr(plan, "dataset_hash", lambda name: f"hash-of-{name}")
    task = {**SPEC["tasks"][1], "conditions": ["base", "logit-sum"]}
    built = plan.build_plan(parse_spec({**SPEC, "models": ["smollm2-135m"], "tasks": [task],
                                        "generate": {"max_new_tokens": 10}, "train": {"steps": 5}}))
    train = next(u for u in built.units if u.kind == "train")
    (stage_path(tmp_path, "train", train.key) / METADATA_FILE).parent.mkdir(parents=True)
    (stage_path(tmp_path, "train", train.key) / METADATA_FILE).write_text("{}")
    logit = next(u for u in built.cells if u.condition == "logit-sum")
    stage_path(tmp_path, "evaluate", logit.key).parent.mkdir(parents=True)
    stage_path(tmp_path, "evaluate", logit.key).write_text("{}")

    rows = {r.kind: r for r in workload(built, tmp_path)}
    assert list(rows) == ["train", "cell"]
    # two modules of 5 steps × batch 8 × 64 tokens; one of them is in the cache
    assert (rows["train"].units, rows["train"].done, rows["train"].tokens, rows["train"].tokens_left) == \
        (2, 1, 2 * 5 * 8 * 64, 5 * 8 * 64)
    # per seed: base 2 prompts × 3 samples × 10 tokens; logit-sum the same × its 2 member forwards
    cell = rows["cell"]
    assert (cell.units, cell.done, cell.continuations, cell.continuations_left) == (4, 1, 4 * 6, 3 * 6)
    assert (cell.tokens, cell.tokens_left) == (2 * (60 + 120), 2 * 60 + 120)
    text = format_workload(list(rows.values()))
    assert "smollm2-135m  cell       4     1" in text and text.splitlines()[-1].split()[:4] == ["all", "cell", "4", "1"]


def test_a_part_of_the_grid_has_the_whole_grids_keys_and_names_are_checked(built):
    from loracompose.errors import LoraComposeError
    from loracompose.experiments.spec import select

    spec = parse_spec({**SPEC, "tasks": SPEC["tasks"] + [{"set": "topic", "targets": ["sport"],
                                                          "conditions": ["base", "single"]}]})
    whole = plan.build_plan(spec)
    part = plan.build_plan(select(spec, models=["gemma3-270m"], sets=["topic"]))
    expected = [u.key for u in whole.units if u.model == "gemma3-270m"
                and (u.task == "topic" if u.kind == "cell" else u.kind == "train" and u.recipe.datasets == ("bbc",))]
    assert [u.key for u in part.units] == expected and len(part.cells) == 2 * 2  # base and single × 2 seeds
    assert len(plan.build_plan(select(spec, sets=["sentiment"])).units) == len(built.units)
    assert select(spec) == spec
    assert select(parse_spec(SPEC, "name: pieces\n"), sets=["sentiment"]).source == \
        "name: pieces\n# this run: the part --sets sentiment of this spec's grid\n"
    with pytest.raises(LoraComposeError, match=r"--models: 'gemma' not in experiment 'pieces'; it has: smollm2-135m"):
        select(spec, models=["gemma"])
    with pytest.raises(LoraComposeError, match=r"--sets: 'multi' not in .* it has: sentiment, topic"):
        select(spec, sets=["topic", "multi"])
    with pytest.raises(LoraComposeError, match=r"--sets names nothing; give one or more of: sentiment, topic"):
        select(spec, sets=[])
