"""Prompt sets: the built-in sets, held-out and neutral openings, files, and bad names."""

from __future__ import annotations

import pytest

from loracompose import LoraComposeError
from loracompose.prompts import (PPLM35_PROMPTS, PPLM_PROMPTS, PPLM_TOPIC_PROMPTS, check_prompt_set, load_prompts,
                                 neutral_prompts)


def test_pplm_sets():
    assert load_prompts("pplm") == PPLM_PROMPTS and len(PPLM_PROMPTS) == 15
    assert len(PPLM_TOPIC_PROMPTS) == 20 and len(set(PPLM35_PROMPTS)) == 35
    assert load_prompts("pplm35")[:15] == PPLM_PROMPTS
    assert load_prompts("pplm35")[15:] == PPLM_TOPIC_PROMPTS
    assert PPLM_TOPIC_PROMPTS[0] == "In summary" and PPLM_TOPIC_PROMPTS[-1] == "In this essay"


def test_old_homes_import_the_same_objects():
    from loracompose import generate

    assert generate.PPLM_PROMPTS is PPLM_PROMPTS and generate.load_prompts is load_prompts
    # experiments/prompts.py's load_prompt_set is now load_prompts' `limit` (an experiment's max_prompts)
    assert load_prompts("pplm35", heldout_n=3, heldout_words=2, limit=16) == PPLM35_PROMPTS[:16]


def test_neutral_set_is_balanced_bbc_body_openings_without_vader_sentiment():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from loracompose.data import load_attribute_dataset

    prompts = load_prompts("neutral")
    assert len(prompts) == 35 and len(set(prompts)) == 35
    assert prompts == load_prompts("neutral")  # fixed, reproducible
    assert all(len(p.split()) == 6 for p in prompts)
    vader = SentimentIntensityAnalyzer()
    assert all(vader.polarity_scores(p)["compound"] == 0 for p in prompts)
    bbc = load_attribute_dataset("bbc")
    for i, topic in enumerate(bbc.labels):  # 7 per topic, each the start of a test article's body
        bodies = [t.partition("\n\n")[2] for t in bbc.texts("test", topic)]
        assert all(any(" ".join(b.split()[:6]) == p for b in bodies) for p in prompts[7 * i: 7 * i + 7])
    assert neutral_prompts(per_topic=2) == tuple(p for i in range(5) for p in prompts[7 * i: 7 * i + 2])


def test_heldout_and_files(tmp_path):
    held = load_prompts("heldout:rotten_tomatoes", heldout_n=5, heldout_words=3)
    assert len(held) == 5 and all(len(p.split()) <= 3 for p in held)
    txt = tmp_path / "p.txt"
    txt.write_text("One\n\nTwo\n")
    assert load_prompts(str(txt)) == ["One", "Two"]


@pytest.mark.parametrize("spec,message", [
    ("pplm36", "unknown prompt set 'pplm36' .*accepted: pplm, pplm35, neutral, heldout:DATASET, or a prompt file"),
    ("heldout:yelp", "unknown dataset 'yelp' in held-out prompt set 'heldout:yelp'; accepted: imdb"),
    ("missing.jsonl", "unknown prompt set 'missing.jsonl'"),
])
def test_unknown_prompt_sets(spec, message):
    with pytest.raises(LoraComposeError, match=message):
        check_prompt_set(spec)
    with pytest.raises(LoraComposeError, match=message):
        load_prompts(spec)


def test_unknown_prompt_set_on_the_command_line(capsys, tmp_path):
    from loracompose.cli import main

    out = tmp_path / "g.jsonl"
    code = main(["generate", "--model", "smollm2-135m", "--prompts", "pplm36", "--out", str(out)])
    assert code == 2 and "unknown prompt set 'pplm36'" in capsys.readouterr().err and not out.exists()
