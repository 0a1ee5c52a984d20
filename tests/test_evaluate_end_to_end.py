"""`evaluate` and `compare` end to end: generations files → metrics.json → a table with p-values."""

from __future__ import annotations

import json
import re

import pytest

from loracompose import LoraComposeError
from loracompose.cli import main
from loracompose.evaluate.compare import compare, format_table
from loracompose.evaluate.metrics import EvalOptions, evaluate_generations, write_metrics
from loracompose.evaluate.panel import JudgeSettings

# The same small caps as test_evaluate_judges.py, so both share one cached panel per attribute.
TEST_SETTINGS = JudgeSettings(embed_per_label=80, ngram_per_label=1500, test_per_label=100)
CAPS = ["--embed-per-label", "80", "--ngram-per-label", "1500", "--test-per-label", "100"]

PROMPTS = ["The movie", "The food", "My day", "The book", "The concert", "The hotel", "The game", "The city"]
POSITIVE = [" was wonderful, I loved every minute of it.", " was delicious and the staff were lovely.",
            " was great, full of happy moments with friends.", " is a brilliant, beautiful story.",
            " was fantastic and the band was amazing.", " was excellent, clean and very comfortable.",
            " was a joy to play, great fun.", " is beautiful and the people are wonderful."]
NEGATIVE = [" was awful, a boring waste of time.", " was disgusting and the service was terrible.",
            " was horrible, everything went wrong.", " is dull, badly written and tedious.",
            " was terrible and the sound was awful.", " was dirty, noisy and the worst ever.",
            " was a frustrating, broken mess.", " is ugly and the traffic is dreadful."]


def write_generations(path, texts, prompts=PROMPTS, **fields):
    """A generations file: each (prompt, text) pair as samples 0 and 1 of seed 7, with `fields` on every row."""
    rows = [{"prompt": p, "text": t, "seed": 7, "sample": s, **fields}
            for s in range(2) for p, t in zip(prompts, texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gens")
    mixed = [t if i % 2 else NEGATIVE[i] for i, t in enumerate(POSITIVE)]  # half positive, half negative
    return (write_generations(root / "base.jsonl", mixed, module=None),
            write_generations(root / "pos.jsonl", POSITIVE, module="pos"))


@pytest.fixture(scope="module")
def metrics(files, tiny_model_dir):
    options = EvalOptions(reference=str(tiny_model_dir), settings=TEST_SETTINGS, resamples=2000, progress=False)
    return [evaluate_generations(f, "sentiment=positive", options) for f in files]


def test_metrics_hold_accuracy_fluency_diversity_and_provenance(metrics):
    base, pos = metrics
    for m in metrics:
        assert m["generations"]["records"] == 16 and m["generations"]["prompts"] == 8
        result = m["attributes"]["sentiment"]
        assert result["target"] == "positive" and result["hard_accuracy"]["n"] == 16
        low, high = result["hard_accuracy"]["ci"]
        assert low <= result["hard_accuracy"]["value"] <= high
        assert [j["name"] for j in result["judges"]] == ["mpnet-logreg", "tfidf-logreg", "vader", "lexicons"]
        for judge in result["judges"]:
            assert judge["headline_dataset"] == "rotten_tomatoes" and 0.5 < judge["headline_test_accuracy"] <= 1
            assert set(judge["test_accuracy"]) == {"rotten_tomatoes", "imdb", "tweets"}
        assert set(result["vote_test_accuracy"]) == {"rotten_tomatoes", "imdb", "tweets"}
        assert m["fluency"]["tokens"] > 16 and m["fluency"]["perplexity"] > 1
        assert m["fluency"]["ci"][0] <= m["fluency"]["perplexity"] <= m["fluency"]["ci"][1]
        assert 0 < m["diversity"]["distinct_1"] <= 1
        assert m["provenance"]["loracompose"] and m["provenance"]["judge_input"] == "full"
        assert len(m["samples"]) == 16 and set(m["samples"][0]) >= {"prompt", "sample", "seed", "hits", "soft", "nll"}
        assert m["joint_hard_accuracy"] is None
    assert pos["attributes"]["sentiment"]["hard_accuracy"]["value"] == 1.0
    assert base["attributes"]["sentiment"]["hard_accuracy"]["value"] == 0.5
    assert pos["attributes"]["sentiment"]["soft_accuracy"]["value"] > base["attributes"]["sentiment"]["soft_accuracy"]["value"]
    assert base["generations"]["system"] == {"module": None} and pos["generations"]["system"] == {"module": "pos"}


def test_compare_gives_a_significant_paired_difference(metrics, tmp_path):
    paths = [write_metrics(m, tmp_path / f"{name}.json") for m, name in zip(metrics, ["base", "pos"])]
    rows = compare(paths[0], [paths[1]], resamples=2000)
    hard = next(r for r in rows if r.metric == "sentiment=positive hard")
    assert (hard.base, hard.other, hard.difference, hard.pairs) == (0.5, 1.0, 0.5, 16)
    # 8 discordant pairs, all won by the positive system: p = 2 / 2^8.
    assert hard.p_value == pytest.approx(2 / 256) and hard.p_holm == pytest.approx(2 / 256)
    assert 0 < hard.ci[0] <= 0.5 <= hard.ci[1]
    assert {r.metric for r in rows} == {"sentiment=positive hard", "sentiment=positive soft", "perplexity",
                                        "distinct-2"}
    assert "0.0078" in format_table(rows)


def test_compare_refuses_what_cannot_be_paired(metrics, tmp_path):
    base = write_metrics(metrics[0], tmp_path / "base.json")
    other = dict(metrics[1], targets={"sentiment": "negative"})
    with pytest.raises(LoraComposeError, match="evaluate both with the same --target"):
        compare(base, [write_metrics(other, tmp_path / "t.json")])
    other = dict(metrics[1], samples=[dict(s, seed=99) for s in metrics[1]["samples"]])
    with pytest.raises(LoraComposeError, match="share no \\(prompt, sample, seed\\)"):
        compare(base, [write_metrics(other, tmp_path / "s.json")])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(LoraComposeError, match="is not a loracompose metrics.json"):
        compare(base, [tmp_path / "bad.json"])
    with pytest.raises(LoraComposeError, match="does not exist"):
        compare(base, [tmp_path / "missing.json"])


def test_two_targets_give_a_joint_accuracy_and_user_judges_join_the_panel(files, tmp_path):
    from test_evaluate_inputs import make_classifier

    clf = make_classifier(tmp_path / "clf", {0: "negative", 1: "positive"})
    options = EvalOptions(reference=None, judge_dirs=(str(clf),), settings=TEST_SETTINGS, resamples=500,
                          progress=False, judge_input="continuation")
    m = evaluate_generations(files[1], "sentiment=positive,topic=sport", options)
    assert m["joint_hard_accuracy"]["n"] == 16 and m["fluency"] is None
    sentiment = m["attributes"]["sentiment"]
    assert [j["name"] for j in sentiment["judges"]][-1] == "hf:clf" and sentiment["vote_includes_user_judges"]
    assert set(sentiment["judges"][-1]["test_accuracy"]) == {"rotten_tomatoes", "imdb", "tweets"}
    assert [j["name"] for j in m["attributes"]["topic"]["judges"]] == ["minilm-logreg", "tfidf-logreg", "counts-nb"]
    joint = [all(s["hits"].values()) for s in m["samples"]]
    assert m["joint_hard_accuracy"]["value"] == pytest.approx(sum(joint) / 16)


def test_cli_evaluate_and_compare(files, tiny_model_dir, tmp_path, capsys):
    outs = [tmp_path / "base.json", tmp_path / "pos.json"]
    for gens, out in zip(files, outs):
        code = main(["evaluate", str(gens), "--target", "sentiment=positive", "--reference", str(tiny_model_dir),
                     "--out", str(out), "--resamples", "500", "--no-progress", "--no-calibration", *CAPS])
        assert code == 0 and json.loads(out.read_text())["targets"] == {"sentiment": "positive"}
    printed = capsys.readouterr().out
    assert "sentiment=positive: hard accuracy 1.000" in printed and "test accuracy" in printed
    assert "perplexity" in printed and "texts/s" in printed
    assert "one direction only; the field reports both: --positive POS.jsonl --negative NEG.jsonl" in printed
    assert main(["compare", str(outs[0]), str(outs[1]), "--resamples", "500", "--out", str(tmp_path / "t.json")]) == 0
    table = capsys.readouterr().out
    assert "sentiment=positive hard" in table and "p (Holm)" in table
    assert json.loads((tmp_path / "t.json").read_text())["rows"][0]["p_value"] == pytest.approx(2 / 256)


def test_cli_judges_prints_each_judges_test_accuracy(capsys):
    assert main(["judges", "topic", "--no-progress", *CAPS]) == 0
    out = capsys.readouterr().out
    for name in ("minilm-logreg", "tfidf-logreg", "counts-nb", "majority vote"):
        assert name in out
    # the table: a column per dataset (here bbc), a row per judge with its test accuracy and n
    assert re.search(r"judge\s+bbc\n", out)
    assert re.search(r"majority vote\s+in-domain\s+0\.9\d\d n=202", out)


@pytest.mark.parametrize("content,target,message", [
    ("", "sentiment=positive", "is empty"),
    ('{"prompt": "a"}\n', "sentiment=positive", "lacks the field(s) text"),
    ('{"prompt": "a", "text": "b"}\n', "mood=happy", "unknown attribute 'mood'"),
    ('{"prompt": "a", "text": "b"}\n', "topic=cooking", "unknown label 'cooking' for attribute 'topic'"),
])
def test_cli_bad_input_exits_non_zero_with_one_message_and_writes_nothing(tmp_path, capsys, content, target,
                                                                          message):
    gens, out = tmp_path / "g.jsonl", tmp_path / "m.json"
    gens.write_text(content)
    code = main(["evaluate", str(gens), "--target", target, "--out", str(out), "--reference", "none", *CAPS])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_a_bad_reference_model_fails_before_any_judging(files, tmp_path, capsys):
    code = main(["evaluate", str(files[0]), "--target", "sentiment=positive", "--reference", str(tmp_path / "none-here"),
                 "--out", str(tmp_path / "m.json"), *CAPS])
    assert code == 2 and "unknown model" in capsys.readouterr().err and not (tmp_path / "m.json").exists()


def test_perplexity_of_a_subset_scores_the_same_texts_the_same(files, metrics, tiny_model_dir):
    """`perplexity_samples: 1` scores sample 0 of each prompt only, with the very NLL the full pass gave
    those texts; the others carry none, and the summary counts what was scored."""
    options = EvalOptions(reference=str(tiny_model_dir), settings=TEST_SETTINGS, resamples=500, progress=False,
                          perplexity_samples=1)
    subset = evaluate_generations(files[1], "sentiment=positive", options)
    full = {(s["prompt"], s["sample"]): s for s in metrics[1]["samples"]}
    scored = [s for s in subset["samples"] if "nll" in s]
    assert [s["sample"] for s in scored] == [0] * 8 and subset["fluency"]["texts"] == 8
    assert all("nll" not in s for s in subset["samples"] if s["sample"] != 0)
    for s in scored:
        assert s["nll"] == pytest.approx(full[(s["prompt"], 0)]["nll"], rel=1e-5)
        assert s["tokens"] == full[(s["prompt"], 0)]["tokens"]
    assert subset["fluency"]["tokens"] == sum(s["tokens"] for s in scored)
