"""Both directions: each direction's metrics, their mean, one perplexity pass, calibration, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loracompose import LoraComposeError
from loracompose.cli import main
from loracompose.evaluate.compare import compare
from loracompose.evaluate.directions import evaluate_directions
from loracompose.evaluate.metrics import EvalOptions, evaluate_generations, write_metrics
from test_evaluate_end_to_end import CAPS, NEGATIVE, POSITIVE, PROMPTS, TEST_SETTINGS, write_generations


def composition(label: str | None, weight: float = 1.0) -> dict | None:
    if label is None:
        return None
    other = "negative" if label == "positive" else "positive"
    return {"method": "output-sum", "weights": {"pos": weight if label == "positive" else -weight,
                                                "neg": weight if label == "negative" else -weight},
            "targets": {"pos": {"label": "positive", "attribute": "sentiment"},
                        "neg": {"label": "negative", "attribute": "sentiment"}},
            "note": f"steers away from {other}"}


def write(path, texts, label, prompts=PROMPTS):
    return write_generations(path, texts, prompts, composition=composition(label))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("directions")
    mixed = [t if i % 2 else NEGATIVE[i] for i, t in enumerate(POSITIVE)]
    return {"pos": write(root / "pos.jsonl", POSITIVE, "positive"),
            "neg": write(root / "neg.jsonl", NEGATIVE, "negative"),
            "base": write(root / "base.jsonl", mixed, None)}


@pytest.fixture(scope="module")
def options(tiny_model_dir):
    return EvalOptions(reference=str(tiny_model_dir), settings=TEST_SETTINGS, resamples=1000, progress=False)


@pytest.fixture(scope="module")
def steered(files, options):
    return evaluate_directions({"positive": files["pos"], "negative": files["neg"]}, "sentiment", {}, options)


@pytest.fixture(scope="module")
def base_both(files, options):
    return evaluate_directions({"positive": files["base"], "negative": files["base"]}, "sentiment", {}, options)


def test_each_direction_and_the_mean(steered):
    assert steered["kind"] == "directions" and list(steered["directions"]) == ["positive", "negative"]
    for label in ("positive", "negative"):
        m = steered["directions"][label]
        assert m["targets"] == {"sentiment": label}
        assert m["attributes"]["sentiment"]["hard_accuracy"]["value"] == 1.0
    mean = steered["mean"]
    assert mean["hard_accuracy"]["value"] == 1.0 and mean["hard_accuracy"]["n"] == 32
    soft = [steered["directions"][d]["attributes"]["sentiment"]["soft_accuracy"]["value"] for d in ("positive", "negative")]
    assert mean["soft_accuracy"]["value"] == pytest.approx(np.mean(soft))
    assert mean["soft_accuracy"]["ci"][0] <= mean["soft_accuracy"]["value"] <= mean["soft_accuracy"]["ci"][1]


def test_the_base_model_given_for_both_directions_means_exactly_one_half(base_both):
    # With two labels every text is voted one of them: hits toward positive and toward negative
    # complement each other on the same prompts, so the mean is 1/2 in every bootstrap draw.
    pos = base_both["directions"]["positive"]["attributes"]["sentiment"]["hard_accuracy"]["value"]
    neg = base_both["directions"]["negative"]["attributes"]["sentiment"]["hard_accuracy"]["value"]
    assert pos + neg == pytest.approx(1.0) and pos == 0.5
    assert base_both["mean"]["hard_accuracy"]["value"] == 0.5
    assert base_both["mean"]["hard_accuracy"]["ci"] == pytest.approx([0.5, 0.5])


def test_perplexity_is_scored_once_across_files_and_equals_one_file_alone(files, steered, base_both, options):
    alone = evaluate_generations(files["pos"], "sentiment=positive", options)
    together = steered["directions"]["positive"]
    assert together["fluency"]["tokens"] == alone["fluency"]["tokens"]
    assert together["fluency"]["perplexity"] == pytest.approx(alone["fluency"]["perplexity"], rel=1e-4)
    nll_alone = [s["nll"] for s in alone["samples"]]
    np.testing.assert_allclose([s["nll"] for s in together["samples"]], nll_alone, rtol=1e-4)
    # One file given for both directions is scored once: both carry the same numbers.
    a, b = (base_both["directions"][d]["samples"] for d in ("positive", "negative"))
    assert [s["nll"] for s in a] == [s["nll"] for s in b]
    assert steered["provenance"]["perplexity_texts_per_second"] > 0


def test_compare_shows_each_direction_and_the_mean(steered, base_both, tmp_path):
    base = write_metrics(base_both, tmp_path / "base.json")
    other = write_metrics(steered, tmp_path / "steered.json")
    rows = {r.metric: r for r in compare(base, [other], resamples=1000)}
    assert {"toward positive: sentiment=positive hard", "toward negative: sentiment=negative hard",
            "mean of directions: sentiment hard", "mean of directions: sentiment soft"} <= set(rows)
    mean = rows["mean of directions: sentiment hard"]
    assert (mean.base, mean.other, mean.difference, mean.pairs) == pytest.approx((0.5, 1.0, 0.5, 32))
    # Pooled McNemar: 16 discordant pairs, all won by the steered system: p = 2 / 2^16.
    assert mean.p_value == pytest.approx(2 / 2**16)
    assert mean.ci[0] <= 0.5 <= mean.ci[1]
    single = write_metrics(steered["directions"]["positive"], tmp_path / "single.json")
    with pytest.raises(LoraComposeError, match="holds both directions and .* one target; compare like with like"):
        compare(single, [other])


def test_cli_both_directions_prints_each_the_mean_and_calibration(files, tiny_model_dir, tmp_path, capsys,
                                                                  monkeypatch):
    from loracompose.evaluate import calibration

    monkeypatch.setattr(calibration, "neutral_texts", lambda: {"neutral set": ["It is a car.", "The road is long."]})
    monkeypatch.setattr(calibration, "cache_dir", lambda: tmp_path / "cache")  # the calibration's cache only
    out = tmp_path / "m.json"
    code = main(["evaluate", "--positive", str(files["pos"]), "--negative", str(files["neg"]),
                 "--baseline", str(files["base"]), "--reference", str(tiny_model_dir), "--resamples", "500",
                 "--no-progress", "--out", str(out), *CAPS])
    printed = capsys.readouterr().out
    assert code == 0 and "toward positive  hard accuracy 1.000" in printed
    assert "toward negative  hard accuracy 1.000" in printed and "mean             hard accuracy 1.000" in printed
    assert "calibration — share the sentiment vote calls positive: neutral set" in printed
    assert "(n=2); baseline base.jsonl 0.500 (n=16)" in printed
    saved = json.loads(out.read_text())
    assert saved["baseline"]["vote_share"]["positive"] == 0.5 and saved["calibration"]["sets"]["neutral set"]["n"] == 2
    assert list((tmp_path / "cache" / "calibration").glob("sentiment-*.json"))  # cached per panel


@pytest.mark.parametrize("args,message", [
    (["--positive", "{neg}", "--negative", "{pos}"],
     "was given as the sentiment=positive direction, but its composition steers toward negative"),
    (["--positive", "{pos}"], "reports both directions: give generations for at least two labels"),
    (["--positive", "{pos}", "--toward", "happy={neg}"], "unknown label 'happy' for attribute 'sentiment'"),
    (["--positive", "{pos}", "--negative", "{short}"], "hold different prompts"),
    (["{pos}", "--positive", "{pos}", "--negative", "{neg}"], "not both"),
    (["--toward", "sport"], "is not of the form LABEL=FILE"),
    (["--positive", "{pos}", "--negative", "{neg}", "--attribute", "topic"], "for --attribute topic use --toward"),
    (["{pos}"], "evaluate needs generations for both directions"),
    (["{neg}", "--target", "sentiment=positive"], "steers toward negative"),
])
def test_bad_directions_exit_non_zero_with_one_message_and_write_nothing(files, tmp_path, capsys, args, message):
    short = write(tmp_path / "short.jsonl", NEGATIVE[:3], "negative", PROMPTS[:3])
    paths = {"pos": files["pos"], "neg": files["neg"], "short": short}
    out = tmp_path / "m.json"
    code = main(["evaluate", *[a.format(**paths) for a in args], "--reference", "none", "--out", str(out), *CAPS])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_steered_label_counts_net_weights_per_label():
    from loracompose.evaluate.generations import steered_label

    labels = ("negative", "positive")
    assert steered_label({"composition": composition("positive")}, "sentiment", labels)[0] == "positive"
    assert steered_label({}, "sentiment", labels) == (None, {})
    tie = {"composition": {"weights": {"a": 1.0, "b": 1.0}, "targets": {"a": {"label": "positive", "attribute": "sentiment"},
                                                                        "b": {"label": "negative", "attribute": "sentiment"}}}}
    assert steered_label(tie, "sentiment", labels)[0] is None
    combined = {"composition": {"weights": {"c": 1.0}, "targets": {"c": {"label": "negative+sport",
                                                                         "attribute": "sentiment+topic"}}}}
    assert steered_label(combined, "sentiment", labels)[0] == "negative"
    assert steered_label(combined, "topic", ("business", "sport"))[0] == "sport"


def test_calibration_sets_are_human_written_neutral_test_texts():
    from loracompose.data import load_attribute_dataset
    from loracompose.evaluate.calibration import format_calibration, neutral_texts

    sets = neutral_texts()
    tweets, bbc = sets["neutral tweets (tweets test split)"], sets["BBC article openings (bbc test split)"]
    assert len(tweets) == 300 and set(tweets) <= set(load_attribute_dataset("tweets").texts("test", "neutral"))
    assert len(bbc) == 202 and all(0 < len(t.split()) <= 40 for t in bbc)
    line = format_calibration({"sets": {"a": {"n": 4, "vote_share": {"positive": 0.25}}}},
                              {"baseline b.jsonl": {"n": 2, "vote_share": {"positive": 1.0}}})
    assert line == "calibration — share the sentiment vote calls positive: a 0.250 (n=4); baseline b.jsonl 1.000 (n=2)"
    assert format_calibration(None) is None
