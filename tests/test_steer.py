"""Attribute-level steering: resolution of targets to compositions, and `generate --steer` end to end."""

import json
import math
from pathlib import Path

import pytest

from loracompose.cli import main
from loracompose.errors import LoraComposeError
from loracompose.modules import ModuleInfo, write_metadata
from loracompose.steer import parse_steer, resolve_steering, starter_modules_dir
from loracompose.testing import random_adapter


def info(name, attribute, label):
    return ModuleInfo(Path(name), name, {"r": 4, "lora_alpha": 8}, {"attribute": attribute, "label": label})


BANK = {n: info(n, a, lab) for n, a, lab in [
    ("positive@rt", "sentiment", "positive"), ("negative@rt", "sentiment", "negative"),
    ("positive@imdb", "sentiment", "positive"), ("sport@bbc", "topic", "sport"), ("tech@bbc", "topic", "tech"),
    ("tech@bbc", "topic", "tech")]}


def test_contrast_pulls_toward_the_experts_and_away_from_the_opposite_label():
    s = resolve_steering(BANK, {"sentiment": "negative"}, strength=1.5)
    assert s.method == "output-sum"
    assert s.composition == {"negative@rt": 1.5, "positive@imdb": -1.5, "positive@rt": -1.5}
    assert s.experts == {"sentiment": ["negative@rt"]}
    assert s.anti_experts == {"sentiment": ["positive@imdb", "positive@rt"]}


def test_a_topic_has_no_single_opposite_and_targets_add_up():
    s = resolve_steering(BANK, parse_steer("sentiment=positive, topic=sport"), strength=1.0)
    assert s.composition == {"positive@imdb": 1.0, "positive@rt": 1.0, "negative@rt": -1.0, "sport@bbc": 1.0}
    assert s.anti_experts["topic"] == []  # topic has five values: tech is not sport's opposite


def test_the_default_strength_is_two():
    assert resolve_steering(BANK, {"sentiment": "negative"}).composition == {
        "negative@rt": 2.0, "positive@imdb": -2.0, "positive@rt": -2.0}


def test_each_attribute_may_have_its_own_strength():
    s = resolve_steering(BANK, {"sentiment": "negative", "topic": "sport"}, strength={"sentiment": 1.0})
    assert s.composition == {"negative@rt": 1.0, "positive@imdb": -1.0, "positive@rt": -1.0, "sport@bbc": 2.0}
    assert s.strength == {"sentiment": 1.0, "topic": 2.0}
    with pytest.raises(LoraComposeError, match="strength given for 'mood', which is not steered"):
        resolve_steering(BANK, {"sentiment": "negative"}, strength={"mood": 2.0})
    with pytest.raises(LoraComposeError, match="out of range"):
        resolve_steering(BANK, {"sentiment": "negative"}, strength={"sentiment": True})


def test_expert_and_logit_contrast_strategies():
    assert resolve_steering(BANK, {"sentiment": "negative"}, 1.0, "expert").composition == {"negative@rt": 1.0}
    s = resolve_steering(BANK, {"sentiment": "negative"}, 2.0, "logit-contrast")
    assert s.method == "logit-sum"
    assert s.composition == {"base": 1.0, "negative@rt": 2.0, "positive@imdb": -2.0, "positive@rt": -2.0}


@pytest.mark.parametrize("targets, strength, strategy, message", [
    ({"mood": "happy"}, 1.0, "contrast", "no module steers attribute 'mood'; attributes and values with modules: "
                                         "sentiment: negative, positive; topic: sport, tech"),
    ({"sentiment": "neutral"}, 1.0, "contrast", "no module steers sentiment=neutral; values of 'sentiment' with "
                                                "modules: negative, positive"),
    ({"sentiment": "positive"}, 0.0, "contrast", "--strength 0.0 is out of range; accepted: above 0.0 and at most 4.0"),
    ({"sentiment": "positive"}, 4.5, "contrast", "out of range"),
    ({"sentiment": "positive"}, math.nan, "contrast", "out of range"),
    ({"sentiment": "positive"}, 1.0, "dexperts", "unknown steer strategy 'dexperts'; accepted: contrast, expert"),
])
def test_bad_steering_names_what_exists(targets, strength, strategy, message):
    with pytest.raises(LoraComposeError, match=message.replace("(", r"\(")):
        resolve_steering(BANK, targets, strength, strategy)


@pytest.mark.parametrize("text, message", [("sentiment", "not of the form attribute=value"),
                                           ("sentiment=positive,sentiment=negative", "steered twice"),
                                           (" , ", "needs attribute=value pairs")])
def test_bad_steer_syntax(text, message):
    with pytest.raises(LoraComposeError, match=message):
        parse_steer(text)


def test_a_base_without_starter_modules_is_named():
    with pytest.raises(LoraComposeError, match="no starter modules ship for base 'gemma3-270m'.*pass --modules"):
        starter_modules_dir("gemma3-270m")


@pytest.fixture(scope="module")
def labelled_modules(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("steer-modules")
    for name, seed, attribute, label in [("pos", 61, "sentiment", "positive"), ("neg", 62, "sentiment", "negative"),
                                         ("sport", 63, "topic", "sport")]:
        random_adapter(tiny_model_dir, root / name, seed=seed)
        write_metadata(root / name, {"name": name, "attribute": attribute, "label": label})
    return root


def generate(capsys, tiny_model_dir, modules, out, *extra):
    code = main(["generate", "--model", str(tiny_model_dir), "--modules", str(modules), "--prompt", "The lake",
                 "--prompt", "The horse", "--seeds", "3", "--samples", "2", "--max-new-tokens", "6",
                 "--out", str(out), *extra])
    return code, capsys.readouterr()


def test_generate_steer_equals_the_composition_it_resolves_to(tiny_model_dir, labelled_modules, tmp_path, capsys):
    code, _ = generate(capsys, tiny_model_dir, labelled_modules, tmp_path / "steer.jsonl",
                       "--steer", "sentiment=negative,topic=sport", "--strength", "0.8")
    assert code == 0
    steered = [json.loads(line) for line in (tmp_path / "steer.jsonl").read_text().splitlines()]
    assert steered[0]["composition"]["weights"] == {"neg": 0.8, "pos": -0.8, "sport": 0.8}
    assert steered[0]["steer"]["targets"] == {"sentiment": "negative", "topic": "sport"}
    assert steered[0]["steer"]["anti_experts"] == {"sentiment": ["pos"], "topic": []}  # no other topic module
    code, _ = generate(capsys, tiny_model_dir, labelled_modules, tmp_path / "compose.jsonl",
                       "--compose", "neg=0.8,pos=-0.8,sport=0.8", "--method", "output-sum")
    composed = [json.loads(line) for line in (tmp_path / "compose.jsonl").read_text().splitlines()]
    assert [r["text"] for r in steered] == [r["text"] for r in composed]
    code, _ = generate(capsys, tiny_model_dir, labelled_modules, tmp_path / "base.jsonl")
    base = [json.loads(line) for line in (tmp_path / "base.jsonl").read_text().splitlines()]
    assert [r["text"] for r in steered] != [r["text"] for r in base]  # the modules (B ≠ 0) move the text


@pytest.mark.parametrize("extra, message", [
    (["--steer", "sentiment=neutral"], "no module steers sentiment=neutral; values of 'sentiment' with modules: "
                                       "negative, positive"),
    (["--steer", "colour=red"], "no module steers attribute 'colour'"),
    (["--steer", "sentiment=positive", "--compose", "pos=1"], "use either --steer, or --compose with --method"),
    (["--steer", "sentiment=positive", "--strength", "9"], "--strength 9.0 is out of range"),
    (["--compose", "pos=1", "--strength", "2"], "--strength and --strategy apply to --steer"),
])
def test_generate_steer_refuses_bad_input_and_writes_nothing(tiny_model_dir, labelled_modules, tmp_path, capsys,
                                                             extra, message):
    code, captured = generate(capsys, tiny_model_dir, labelled_modules, tmp_path / "out.jsonl", *extra)
    assert code == 2 and message in captured.err
    assert not (tmp_path / "out.jsonl").exists()


def test_demo_writes_a_report_of_steering_against_the_base(tiny_model_dir, labelled_modules, tmp_path):
    from test_evaluate_end_to_end import TEST_SETTINGS

    from loracompose.demo import DemoSettings, run_demo

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The lake\nThe horse\nThe city\n")
    settings = DemoSettings(model=str(tiny_model_dir), modules=str(labelled_modules), prompts=str(prompts),
                            seeds=(1,), samples=2, max_new_tokens=6, resamples=200, judges=TEST_SETTINGS)
    report = run_demo(tmp_path / "demo", settings)
    text = report.read_text()
    for row in ("| steer sentiment=positive: judged positive |", "| steer sentiment=negative: judged negative |",
                "| sentiment, mean of both directions |", "| steer topic=sport: judged sport |",
                "| steer sentiment=positive,topic=sport: judged both (joint) |", "**Calibration**"):
        assert row in text, row
    assert "**positive**" in text and "The lake" in text  # example generations
    assert (tmp_path / "demo" / "report.html").read_text().count("<tr>") >= 6
    assert "Code: loracompose commit `" in text  # the report names the code that made it
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    pos = next(r for r in results["comparisons"]["sentiment"] if r["metric"] == "toward positive: sentiment=positive hard")
    assert pos["pairs"] == 6 and 0 <= pos["other"] <= 1 and pos["difference"] == pytest.approx(pos["other"] - pos["base"])
    # a rerun with the same settings reuses the generations; other settings regenerate them
    stamp = (tmp_path / "demo" / "generations" / "base.jsonl").stat().st_mtime_ns
    run_demo(tmp_path / "demo", settings)
    assert (tmp_path / "demo" / "generations" / "base.jsonl").stat().st_mtime_ns == stamp
