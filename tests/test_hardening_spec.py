"""Hostile experiment specs: each gets one line naming the field, before anything expands or runs."""

from __future__ import annotations

import pytest

from loracompose.cli import main
from loracompose.errors import LoraComposeError
from loracompose.experiments.spec import load_spec

BASE = "name: t\nmodels: [smollm2-135m]\ntasks: [{set: sentiment, targets: [positive]}]\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))

HOSTILE = [  # (spec text or bytes, message fragment)
    (BOMB + BASE, "YAML aliases (*a) are not accepted"),
    ("name: &n t\nmodels: [smollm2-135m]\ntasks: [*n]\n", "YAML aliases"),
    ("x: &x [*x]\n" + BASE, "YAML aliases"),  # a circular reference
    ("[" * 5000 + "]" * 5000, "deeper than 32 levels"),
    (b"name: t\xff\xfe\n", "is not UTF-8 text"),
    (BASE + "train: {rank: 1.5}\n", "'train.rank': must be a whole number, got 1.5"),
    (BASE + "train: {learning_rate: fast}\n", "'train.learning_rate': must be a finite number, got 'fast'"),
    (BASE + "train: {learning_rate: .nan}\n", "'train.learning_rate': must be a finite number"),
    (BASE + "train: {target_modules: 7}\n", "'train.target_modules': must be a string or a list of strings"),
    (BASE + "train: {gradient_checkpointing: maybe}\n", "'train.gradient_checkpointing': must be true/false"),
    (BASE + "generate: {template: [1, 2]}\n", "'generate.template': must be a string"),
    (BASE + "generate: {template: 'x {y}'}\n", "'generate.template': accepted: plain, instruct"),
    (BASE + "generate: {template: '{prompt.__class__}'}\n", "'generate.template': accepted: plain, instruct"),
    (BASE + "generate: {temperature: .inf}\n", "'generate.temperature': must be a finite number"),
    (BASE + "generate: {max_new_tokens: '40'}\n", "'generate.max_new_tokens': must be a whole number"),
    (BASE + "samples: " + "9" * 400 + "\n", "'samples': must be a whole number from 1 to 10000, got 999"),
    (BASE + "seeds: [-1]\n", "'seeds': must be a list of 1 to 1000 whole numbers"),
    (BASE + "heldout: {prompts: 100000000000}\n", "'heldout.prompts': must be a whole number from 1 to 100000"),
    (BASE.replace("name: t", "name: .."), "'name': must be 1 to 100 letters"),
    (BASE.replace("name: t", "name: ."), "'name': must be 1 to 100 letters"),
    (BASE.replace("name: t", "name: ../../etc"), "'name': must be 1 to 100 letters"),
    (BASE.replace("name: t", "name: " + "n" * 5000), "'name': must be 1 to 100 letters"),
    (BASE + "workdir: [a]\n", "'workdir': must be a directory path"),
    (BASE + "description: {a: 1}\n", "'description': must be a string"),
    (BASE.replace("smollm2-135m", "x" * 100_000), "'models': must be a list of names"),
    (BASE.replace("smollm2-135m", '"a\\0b"'), "'models[0]':"),
    (BASE.replace("{set: sentiment, targets: [positive]}", "{set: [sentiment]}"), "'tasks[0].set': must be"),
    (BASE.replace("{set: sentiment, targets: [positive]}", "{set: sentiment, mixing: 3}"), "'tasks[0].mixing'"),
    (BASE.replace("{set: sentiment, targets: [positive]}", "{set: sentiment, targets: 5}"), "'tasks[0].targets'"),
    (BASE.replace("{set: sentiment, targets: [positive]}", "7"), "'tasks[0]': must be a task set name"),
    (BASE.replace("{set: sentiment, targets: [positive]}", "{set: " + "s" * 100_000 + "}"),
     "'tasks[0].set': unknown task set"),
    (BASE + "1: 2\n", "'1': unknown field"),
    (BASE + "compose: {density: .nan}\n", "'compose.density'"),
    (BASE + "learn_weights: {l1: .inf}\n", "'learn_weights.l1'"),
    (BASE + "evaluate: {reference: [a]}\n", "'evaluate.reference': must be a model name"),
    (BASE + "evaluate: {resamples: 10000000000}\n", "'evaluate.resamples'"),
    ("- just\n- a list\n", "must be a mapping"),
    ("!!python/object:os.system {}\n", "is not valid YAML"),
]


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_specs_get_one_short_line(tmp_path, index):
    text, fragment = HOSTILE[index]
    path = tmp_path / "spec.yaml"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    with pytest.raises(LoraComposeError) as error:
        load_spec(path)
    message = str(error.value)
    assert fragment in message, message
    assert len(message) < 700 and "Traceback" not in message


def test_the_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bomb.yaml").write_text(BOMB + BASE)
    assert main(["run", "bomb.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: experiment spec 'bomb.yaml': YAML aliases")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml"]
