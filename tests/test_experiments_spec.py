"""Experiment specs: defaults expand, and every error names the field it is about."""

from __future__ import annotations

import re

import pytest

from loracompose import LoraComposeError
from loracompose.cli import main
from loracompose.experiments.spec import load_spec, parse_spec, task_prompt_sets

BASE = {"name": "t", "models": ["smollm2-135m"], "tasks": [{"set": "sentiment", "targets": ["positive"]}]}


def spec(**changes):
    return {**BASE, **changes}


def test_defaults_expand_single_and_heldout():
    s = parse_spec(spec(prompts=["pplm", "heldout"], tasks=[{"set": "sentiment", "targets": ["positive"],
                                                             "conditions": ["base", "single", "output-sum"]}]))
    task = s.tasks[0]
    assert task.datasets == ["imdb", "rotten_tomatoes", "tweets"]
    assert task.conditions == ["base", "single:imdb", "single:rotten_tomatoes", "single:tweets", "output-sum"]
    assert task_prompt_sets(s, task) == ["pplm", "heldout:imdb", "heldout:rotten_tomatoes", "heldout:tweets"]
    assert s.evaluate.reference == "gemma3-270m" and s.generate.quantize is None  # `quantize: none`: dense
    multi = parse_spec(spec(tasks=["multi"])).tasks[0]
    assert len(multi.targets) == 10 and "positive+sport" in multi.targets
    assert multi.conditions == ["base", "output-sum", "weights-average", "combined", "logit-sum", "learn-weights"]


@pytest.mark.parametrize("changes, field", [
    ({"tasks": [{"set": "emotion"}]}, "tasks[0].set"),
    ({"tasks": [{"set": "sentiment", "conditions": ["base", "sum-of-all"]}]}, "tasks[0].conditions[1]"),
    ({"tasks": [{"set": "topic", "conditions": ["output-sum"]}]}, "tasks[0].conditions[0]"),
    ({"tasks": [{"set": "sentiment", "targets": ["happy"]}]}, "tasks[0].targets[0]"),
    ({"tasks": [{"set": "sentiment", "datasets": ["bbc"]}]}, "tasks[0].datasets[0]"),
    ({"tasks": [{"targets": ["positive"]}]}, "tasks[0].set"),
    ({"models": ["smollm2-135m", "no-such-model"]}, "models[1]"),
    ({"models": None}, "models"),
    ({"tasks": []}, "tasks"),
    ({"prompts": ["pplm", "heldout:nowhere"]}, "prompts[1]"),
    ({"samples": 0}, "samples"),
    ({"train": {"steps": 0}}, "train"),
    ({"train": {"stepz": 3}}, "train.stepz"),
    ({"generate": {"top_p": 2.0}}, "generate"),
    ({"evaluate": {"reference": "nowhere-model"}}, "evaluate.reference"),
    ({"evaluate": {"judges": {"embed_per_label": 0}}}, "evaluate.judges"),
    ({"colour": "red"}, "colour"),
    ({"compose": {"density": 1.5}}, "compose.density"),
    ({"learn_weights": {"steps": "many"}}, "learn_weights.steps"),
    ({"tasks": [{"set": "sentiment", "samples": 0}]}, "tasks[0].samples"),
    ({"evaluate": {"perplexity_samples": 0}}, "evaluate.perplexity_samples"),
])
def test_errors_name_the_field(changes, field):
    with pytest.raises(LoraComposeError, match=re.escape(f"spec field '{field}'")):
        parse_spec(spec(**changes))


def test_missing_name_is_named():
    data = dict(BASE)
    del data["name"]
    with pytest.raises(LoraComposeError, match=r"spec field 'name': missing"):
        parse_spec(data)


def test_cli_prints_one_error_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nmodels: [smollm2-135m]\ntasks:\n  - set: emotion\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: spec field 'tasks[0].set': unknown task set 'emotion'") and "sentiment" in err
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(LoraComposeError, match="not valid YAML"):
        load_spec(tmp_path / "broken.yaml")


def test_shipped_configs_are_valid():
    demo = load_spec("configs/study-small.yaml")
    assert demo.models == ["smollm2-135m"] and demo.tasks[0].targets == ["positive"]
    assert set(demo.tasks[0].conditions) == {"base", "single:imdb", "single:rotten_tomatoes", "single:tweets",
                                             "combined", "weights-average", "output-sum"}
    study = load_spec("configs/study.yaml")
    assert [t.set for t in study.tasks] == ["sentiment", "topic", "multi"]
