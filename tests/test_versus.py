"""`loracompose versus` end to end on the tiny model, the table's arithmetic, and its bad input."""

import csv
import io
import json

import pytest

from loracompose import LoraComposeError
from loracompose.cli import main
from loracompose.modules import write_metadata
from loracompose.testing import random_adapter
from loracompose.versus.conditions import Condition, VersusSettings
from loracompose.versus.table import perplexity, summarize


@pytest.fixture(scope="module")
def rt_modules(tiny_model_dir, tmp_path_factory):
    from loracompose.data import load_attribute_dataset

    root = tmp_path_factory.mktemp("versus-modules")
    corpus = {"name": "rotten_tomatoes", "content_hash": load_attribute_dataset("rotten_tomatoes").content_hash}
    for name, seed, label in [("pos", 71, "positive"), ("neg", 72, "negative")]:
        random_adapter(tiny_model_dir, root / name, seed=seed)
        write_metadata(root / name, {"name": name, "attribute": "sentiment", "label": label, "datasets": [corpus]})
    # a topic module beside them, as in a starter directory: its corpus has no sentiment labels
    random_adapter(tiny_model_dir, root / "sport", seed=73)
    write_metadata(root / "sport", {"name": "sport", "attribute": "topic", "label": "sport",
                                    "datasets": [{"name": "bbc", "content_hash": "x"}]})
    return root


def test_versus_end_to_end_with_a_blind_read(tiny_model_dir, rt_modules, tmp_path):
    from test_evaluate_end_to_end import TEST_SETTINGS

    from loracompose.versus.run import run_versus

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The lake\nThe horse\nThe city\n")
    settings = VersusSettings(model=str(tiny_model_dir), modules=str(rt_modules), prompt_sets=(str(prompts),),
                              seeds=(1, 2), max_new_tokens=6, contrast=(1.0, 2.0), expert=(1.0,), dexperts=(1.0,),
                              arithmetic=(2.0,), actadd_layers=(1,), actadd_scales=(0.5,), actadd_texts=8,
                              reference=str(tiny_model_dir), resamples=200, judges=TEST_SETTINGS)
    out = tmp_path / "versus"
    report = run_versus(settings, out)
    text = report.read_text()
    for label in ("base (no steering)", "prompting (chat instruction)", "activation addition, layer 1, c = 0.5",
                  "DExperts (logit-contrast), S = 1", "model arithmetic, S = 2", "modules: contrast, S = 2",
                  "modules: expert alone, S = 1"):
        assert f"| {label} |" in text, label
    record = json.loads((out / "versus.json").read_text())
    assert record["independent_judge"]["name"] == "mpnet-logreg-without-rotten_tomatoes"
    assert record["independent_judge"]["corpora"] == ["imdb", "tweets"]
    rows = record["tables"][str(prompts)]
    assert len(rows) == 8 and all(r["directions"]["negative"]["n"] == 6 for r in rows)
    base = next(r for r in rows if r["condition"] == "base")
    assert base["directions"]["positive"]["perplexity_ratio"] == pytest.approx(1.0)
    assert base["directions"]["positive"]["relevance_ratio"] == pytest.approx(1.0)
    assert (out / "frontier.png").stat().st_size > 10_000
    assert set(record["human_line"]) == {"positive", "negative"}

    # blind read of two conditions from the run, then the table gains its shares
    assert main(["blind", "draw", "--versus", str(out), "--prompt-set", str(prompts).replace("/", "_"),
                 "--conditions", "base,prompt", "--per-condition", "4", "--out", str(tmp_path / "blind")]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "blind" / "sheet.csv").read_text())))
    filled = io.StringIO()
    writer = csv.DictWriter(filled, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({**r, "sentiment": "negative", "coherent": "yes"} for r in rows)
    (tmp_path / "filled.csv").write_text(filled.getvalue())
    assert main(["blind", "reveal", str(tmp_path / "blind"), "--sheet", str(tmp_path / "filled.csv"),
                 "--reader", "test stand-in"]) == 0
    stamp = (out / "generations").stat().st_mtime_ns
    text = run_versus(settings, out, blind=tmp_path / "blind" / "results.json").read_text()
    assert "0.00 / 1.00 (n=4) ; 1.00 / 1.00 (n=4)" in text  # prompt: read negative, so on target toward negative only
    assert (out / "generations").stat().st_mtime_ns == stamp  # nothing regenerated


def row(prompt, verdict, nll=None, relevance=0.5):
    r = {"prompt": prompt, "panel": verdict, "independent": verdict, "vader": 0.5 if verdict == "positive" else -0.5,
         "relevance": relevance, "non_words": 1, "words": 10}
    return r | ({"nll": nll, "tokens": 10} if nll is not None else {})


def test_summary_known_answers():
    base = [row("a", "positive", 10.0), row("b", "negative", 10.0)]
    steered = {"positive": [row("a", "positive", 20.0, 0.25), row("b", "positive", 20.0, 0.25)],
               "negative": [row("a", "negative"), row("b", "positive")]}
    result = summarize(steered, base, None, resamples=100)
    pos, neg = result["directions"]["positive"], result["directions"]["negative"]
    assert pos["independent"]["value"] == 1.0 and neg["independent"]["value"] == 0.5
    assert result["independent_mean"]["value"] == 0.75
    assert perplexity(base) == pytest.approx(2.718281828)  # exp(20 / 20)
    assert pos["perplexity_ratio"] == pytest.approx(2.718281828)  # exp(40/20) / exp(1)
    assert neg["perplexity"] is None and pos["relevance_ratio"] == 0.5 and pos["non_word_rate"] == 0.1
    assert pos["panel_minus_independent"] == 0.0 and pos["agreement_panel_independent"] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"methods": ("base", "gedi")}, "unknown method 'gedi'; accepted: base, prompt, actadd"),
    ({"contrast": (5.0,)}, "--contrast strength 5 is out of range"),
    ({"arithmetic": (0.5,)}, "model arithmetic strength 0.5 is out of range; accepted: 1.0 to 4.0"),
    ({"actadd_scales": (3.0,)}, "activation addition scale 3.0 is out of range"),
    ({"perplexity_seeds": (9,)}, "--perplexity-seeds 9 is not one of --seeds"),
    ({"attribute": "topic"}, "accepted: sentiment"),
])
def test_bad_settings_name_what_exists(kwargs, message):
    with pytest.raises(LoraComposeError, match=message):
        VersusSettings(**kwargs)


def test_conditions_cover_each_sweep():
    names = [c.name for c in VersusSettings().conditions()]
    assert names == ["base", "prompt", "actadd-l22-0.2", "actadd-l22-0.4", "dexperts-1", "arithmetic-2",
                     "contrast-1", "contrast-2", "expert-2"]
    assert Condition("contrast", 2.0).label == "modules: contrast, S = 2"
