"""The independent judge (choice and refusal), the lexicon ensemble, relevance and non-words: known answers."""

import math

import numpy as np
import pytest

from loracompose import LoraComposeError
from loracompose.evaluate.coherence import non_word_counts, non_words, relevance
from loracompose.evaluate.hand_written import hand_written
from loracompose.evaluate.independent import choose_independent, module_corpora
from loracompose.evaluate.judges import LexiconJudge
from loracompose.evaluate.lexicon import AFINN_ALPHA, lexicon_scores
from loracompose.evaluate.panel import JudgePanel
from loracompose.modules import ModuleInfo

HASH = {"rotten_tomatoes": "h-rt", "imdb": "h-imdb", "tweets": "h-tw"}


def fake_panel() -> JudgePanel:
    """A sentiment panel as panel.json describes one (no judge is loaded: choose_independent reads metadata)."""
    accuracy = {"vote": {d: {"accuracy": 0.9, "n": 10} for d in HASH}, "lexicons": {"rotten_tomatoes": {"accuracy": 0.6}}}
    held_out = {d: {"judges": ["mpnet-logreg"], "trained_on": [o for o in HASH if o != d],
                    "accuracy": {"mpnet-logreg": {d: {"accuracy": 0.8, "n": 10}}}, "hand_written": {}} for d in HASH}

    class Named:
        def __init__(self, name):
            self.name = name

    return JudgePanel("sentiment", ["negative", "positive"], [Named("mpnet-logreg"), Named("lexicons")], accuracy,
                      "rotten_tomatoes", {"data": {**HASH, "hand_written": "x"}, "trained_on": list(HASH),
                                          "settings": {"max_words": 64}},
                      non_voting=("lexicons",), held_out=held_out)


def info(*datasets, hashes=None) -> ModuleInfo:
    hashes = hashes or HASH
    return ModuleInfo(path=None, name="m", adapter_config={},
                      metadata={"datasets": [{"name": d, "content_hash": hashes.get(d)} for d in datasets]})


def test_auto_picks_the_judge_trained_without_the_modules_corpus():
    panel = fake_panel()
    panel.held_out_judge = lambda dataset, name: f"{name} without {dataset}"  # no files behind the fake panel
    chosen = choose_independent(panel, module_corpora([info("rotten_tomatoes"), info("rotten_tomatoes")]))
    assert chosen.name == "mpnet-logreg-without-rotten_tomatoes"
    assert chosen.corpora == ("imdb", "tweets") and chosen.module_corpora == ("rotten_tomatoes",)
    assert chosen.judge == "mpnet-logreg without rotten_tomatoes"


def test_modules_on_every_corpus_get_the_lexicons():
    chosen = choose_independent(fake_panel(), module_corpora([info("rotten_tomatoes", "imdb", "tweets")]))
    assert chosen.name == "lexicons" and chosen.corpora == () and isinstance(chosen.judge, LexiconJudge)


def test_modules_without_recorded_corpora_get_the_lexicons():
    assert choose_independent(fake_panel(), module_corpora([info()])).name == "lexicons"


def test_an_overlapping_judge_is_refused_by_name_and_by_content_hash():
    modules = module_corpora([info("rotten_tomatoes")])
    with pytest.raises(LoraComposeError, match="learnt from .*rotten_tomatoes.*cannot be the independent judge"):
        choose_independent(fake_panel(), modules, "panel")
    with pytest.raises(LoraComposeError, match="learnt from rotten_tomatoes"):
        choose_independent(fake_panel(), modules, "mpnet-logreg-without-tweets")
    # a user's copy of IMDb under another name is still IMDb
    renamed = module_corpora([info("my_reviews", hashes={"my_reviews": "h-imdb"})])
    with pytest.raises(LoraComposeError, match="learnt from imdb"):
        choose_independent(fake_panel(), renamed, "mpnet-logreg-without-tweets")
    with pytest.raises(LoraComposeError, match="unknown independent judge 'gpt'.*accepted: auto, panel"):
        choose_independent(fake_panel(), modules, "gpt")


def test_lexicon_ensemble_known_answers():
    scores = lexicon_scores(["The table is brown.", "What a wonderful, lovely day!"])
    assert all(s[0] == 0 for s in scores.values())  # no sentiment word: 0 on every lexicon
    assert all(s[1] > 0.5 for s in scores.values())
    # AFINN's normalisation is VADER's: a / sqrt(a² + 15); "good" is +3 in AFINN
    assert math.isclose(lexicon_scores(["good"])["afinn"][0], 3 / math.sqrt(9 + AFINN_ALPHA))
    p = LexiconJudge().predict_proba(["The table is brown.", "This is terrible, awful food."])
    assert p[0].tolist() == [0.5, 0.5] and p[1, 0] > 0.7 and np.allclose(p.sum(1), 1)


def test_hand_written_set_is_balanced_and_outside_movies():
    texts, labels = hand_written("sentiment")
    assert len(texts) == 60 and labels.count("positive") == labels.count("negative") == 30
    words = {w.strip(".,;:!?'") for t in texts for w in t.lower().split()}
    assert not words & {"film", "films", "movie", "movies", "cinema", "actor", "actors"}
    assert hand_written("topic") == ([], [])


def test_non_words_known_answers():
    text = "The referee saoceátlo said Chelsea's 690m goal wasn't fair, it's a blorptastic day"
    assert non_words(text) == ["saoceátlo", "blorptastic"]  # names, numbers and contractions are not non-words
    bad, total = non_word_counts([text, ""])
    assert bad.tolist() == [2, 0] and total[0] == 9 and total[1] == 0


def test_relevance_prefers_a_continuation_about_the_prompt():
    scores = relevance(["The pizza", "The pizza", "The pizza"],
                       [" was hot, cheesy and fresh from the oven.", " won the league on Saturday.", " "])
    assert scores[0] > scores[1] and scores[2] == 0.0
