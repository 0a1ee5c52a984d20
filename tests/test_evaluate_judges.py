"""Judges: trained on the packaged data (small caps, cached on disk), measured, saved without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from loracompose.evaluate.ensemble import Verdicts
from loracompose.evaluate.features import NgramSettings, NgramVectorizer, embed_minilm
from loracompose.evaluate.judges import LinearJudge, VaderJudge, load_judge
from loracompose.evaluate.linear import LinearHead, fit_logistic_regression, fit_naive_bayes
from loracompose.evaluate.panel import JudgeSettings, judge_panel

# Smaller caps than the defaults so a cold run embeds ~1,300 texts (about a minute on 2 cores);
# the panels are cached under loracompose's cache directory, so later runs load them in seconds.
# The minimums below are what judges of each kind reach *at these caps* (measured: see the report
# of `loracompose judges` for the default caps, which score higher).
TEST_SETTINGS = JudgeSettings(embed_per_label=80, ngram_per_label=1500, test_per_label=100)

# Measured at these caps, trained on the `judge` split (seeded, so the same every run): RT mpnet 0.875,
# tfidf 0.780, vader 0.585 (undecided counts as wrong), vote (mpnet alone votes) 0.875; BBC minilm 0.960,
# tfidf 0.931, counts-nb 0.911, vote 0.941.
MINIMUM = {
    ("sentiment", "rotten_tomatoes"): {"mpnet-logreg": 0.80, "tfidf-logreg": 0.75, "vader": 0.55, "vote": 0.80},
    ("topic", "bbc"): {"minilm-logreg": 0.90, "tfidf-logreg": 0.90, "counts-nb": 0.90, "vote": 0.90},
}


@pytest.fixture(scope="session")
def sentiment_panel():
    return judge_panel("sentiment", TEST_SETTINGS, progress=False)


@pytest.fixture(scope="session")
def topic_panel():
    return judge_panel("topic", TEST_SETTINGS, progress=False)


def test_sentiment_judges_reach_their_minimum_test_accuracy(sentiment_panel):
    assert [j.name for j in sentiment_panel.judges] == ["mpnet-logreg", "tfidf-logreg", "vader", "lexicons"]
    for judge, minimum in MINIMUM[("sentiment", "rotten_tomatoes")].items():
        scores = sentiment_panel.accuracy[judge]
        assert set(scores) == {"rotten_tomatoes", "imdb", "tweets"}
        assert scores["rotten_tomatoes"]["n"] == 200
        assert scores["rotten_tomatoes"]["accuracy"] >= minimum, (judge, scores)
    assert sentiment_panel.headline("tfidf-logreg") == sentiment_panel.accuracy["tfidf-logreg"]["rotten_tomatoes"]["accuracy"]


def test_judges_train_on_the_judge_split_and_report_leave_one_dataset_out(sentiment_panel, topic_panel):
    assert sentiment_panel.provenance["trained_on_split"] == "judge"
    assert sentiment_panel.build_seconds is not None and sentiment_panel.build_seconds > 0
    for judge in ("mpnet-logreg", "tfidf-logreg", "vader", "vote"):
        cross = sentiment_panel.cross_domain[judge]
        assert set(cross) == {"rotten_tomatoes", "imdb", "tweets"}
        assert cross["imdb"]["trained_on"] == ["rotten_tomatoes", "tweets"]
        assert cross["rotten_tomatoes"]["n"] == sentiment_panel.accuracy[judge]["rotten_tomatoes"]["n"]
    # VADER learns nothing, so leaving a dataset out cannot change it; trained judges lose accuracy
    # without their own domain (TF-IDF: RT 0.780 in-domain, 0.670 cross-domain at these caps).
    assert sentiment_panel.cross_domain["vader"]["imdb"]["accuracy"] == sentiment_panel.accuracy["vader"]["imdb"]["accuracy"]
    assert (sentiment_panel.cross_domain["tfidf-logreg"]["rotten_tomatoes"]["accuracy"]
            < sentiment_panel.accuracy["tfidf-logreg"]["rotten_tomatoes"]["accuracy"])
    assert topic_panel.cross_domain == {}  # one dataset: nothing to leave out


def test_held_out_judges_are_kept_and_measured_everywhere(sentiment_panel, topic_panel):
    """The judge trained without X (the independent judge of X's modules) is saved, and is the same judge
    the cross-domain check scored on X: its accuracy there is the cross-domain figure."""
    held = sentiment_panel.held_out["rotten_tomatoes"]
    assert held["trained_on"] == ["imdb", "tweets"] and held["judges"] == ["mpnet-logreg"]
    assert set(held["accuracy"]["mpnet-logreg"]) == {"rotten_tomatoes", "imdb", "tweets"}
    assert (held["accuracy"]["mpnet-logreg"]["rotten_tomatoes"]["accuracy"]
            == sentiment_panel.cross_domain["mpnet-logreg"]["rotten_tomatoes"]["accuracy"])
    judge = sentiment_panel.held_out_judge("rotten_tomatoes", "mpnet-logreg")
    probabilities = judge.predict_proba(CLEAR["positive"] + CLEAR["negative"])
    n = len(CLEAR["positive"])
    assert (probabilities[:n, 1] > 0.5).all() and (probabilities[n:, 0] > 0.5).all()
    # hand-written texts outside movies: every judge measured on all 60 of them
    assert set(sentiment_panel.hand_written) == {"mpnet-logreg", "tfidf-logreg", "vader", "lexicons"}
    assert all(entry["n"] == 60 for entry in sentiment_panel.hand_written.values())
    assert held["hand_written"]["mpnet-logreg"]["n"] == 60
    assert topic_panel.held_out == {} and topic_panel.hand_written == {}


def test_only_the_mpnet_judge_votes_on_sentiment(sentiment_panel, topic_panel):
    assert sentiment_panel.voting == [True, False, False, False]  # mpnet-logreg; the others are reported
    assert topic_panel.voting == [True, True, True]
    for dataset, score in sentiment_panel.accuracy["vote"].items():  # one voter: the vote is its verdict
        assert score == sentiment_panel.accuracy["mpnet-logreg"][dataset]


def test_judge_training_texts_are_never_module_training_texts():
    from loracompose.evaluate.attributes import ATTRIBUTES
    from loracompose.evaluate.panel import _dataset, _pool

    spec = ATTRIBUTES["sentiment"]
    d = _dataset("rotten_tomatoes")
    texts, _ = _pool([d], spec, "judge", 10_000, JudgeSettings(max_words=10_000))
    module_texts = set(d.texts("train", "positive")) | set(d.texts("train", "negative"))
    assert texts and not module_texts & set(texts)


def test_topic_judges_reach_their_minimum_test_accuracy(topic_panel):
    assert [j.name for j in topic_panel.judges] == ["minilm-logreg", "tfidf-logreg", "counts-nb"]
    for judge, minimum in MINIMUM[("topic", "bbc")].items():
        assert topic_panel.accuracy[judge]["bbc"]["accuracy"] >= minimum, (judge, topic_panel.accuracy[judge])


CLEAR = {
    "positive": ["This film is a wonderful, moving masterpiece. I loved every minute of it.",
                 "Brilliant acting and a beautiful story: the best movie I have seen this year."],
    "negative": ["A dreadful, boring mess. The worst film I have ever sat through.",
                 "Terrible acting, awful script, a complete waste of time and money."],
}
CLEAR_TOPICS = {
    "sport": "The striker scored twice as the team won the league title after a dramatic match.",
    "business": "Shares fell sharply after the bank reported lower quarterly profits and rising debt.",
    "politics": "The prime minister faced MPs in parliament over the government's election pledges.",
    "tech": "The new smartphone software lets users download apps and browse the web faster.",
    "entertainment": "The actress won an Oscar for her role in the film, beating the singer's music album.",
}


def test_ensemble_vote_is_right_on_clear_examples(sentiment_panel, topic_panel):
    for label, texts in CLEAR.items():
        verdicts = Verdicts(sentiment_panel.labels, [j.name for j in sentiment_panel.judges],
                            np.stack([j.predict_proba(texts) for j in sentiment_panel.judges]))
        assert verdicts.hard_hits(label).all(), label
        assert (verdicts.soft_scores(label) > 0.5).all(), label
    texts, labels = list(CLEAR_TOPICS.values()), list(CLEAR_TOPICS)
    verdicts = Verdicts(topic_panel.labels, [j.name for j in topic_panel.judges],
                        np.stack([j.predict_proba(texts) for j in topic_panel.judges]))
    assert [topic_panel.labels[i] for i in verdicts.votes()] == labels


def test_panel_reloads_from_the_cache_with_the_same_probabilities(tmp_path, monkeypatch):
    # The judges as trained (kept in memory) against the copies a later call loads from the cache.
    # Small caps and a fresh cache root, so this builds a panel from nothing in a few seconds.
    from loracompose.evaluate import panel

    settings = JudgeSettings(embed_per_label=6, ngram_per_label=40, test_per_label=5, cross_domain=False)
    trained = {}
    train = panel._train

    def keep(*args, **kwargs):
        judges = train(*args, **kwargs)
        trained.update({j.name: j for j in judges})
        return judges

    monkeypatch.setattr(panel, "_train", keep)
    judge_panel("sentiment", settings, progress=False, root=tmp_path)  # empty root: trains and caches
    assert set(trained) == {"mpnet-logreg", "tfidf-logreg", "vader", "lexicons"}
    monkeypatch.setattr(panel, "_train", lambda *a, **k: pytest.fail("trained again although the panel is cached"))
    again = judge_panel("sentiment", settings, progress=False, root=tmp_path)
    texts = CLEAR["positive"] + CLEAR["negative"]
    for judge in again.judges:
        # same texts, same encoder; the trained embedding head computes in float32 (the embeddings'
        # dtype) and its saved copy in float64: they differ by float32 rounding (measured 2.4e-8)
        np.testing.assert_allclose(judge.predict_proba(texts), trained[judge.name].predict_proba(texts),
                                   rtol=0, atol=1e-6)


def test_vote_ties_go_to_the_highest_mean_probability():
    # Three judges, three labels, each judge picks another label: the mean decides (label 1 here).
    probabilities = np.array([[[0.5, 0.3, 0.2]], [[0.1, 0.6, 0.3]], [[0.2, 0.35, 0.45]]])
    verdicts = Verdicts(["a", "b", "c"], ["j1", "j2", "j3"], probabilities)
    assert verdicts.votes().tolist() == [1]
    # Two of three agree on "a" although the mean favours "b": the majority wins.
    probabilities = np.array([[[0.4, 0.35, 0.25]], [[0.4, 0.35, 0.25]], [[0.0, 1.0, 0.0]]])
    assert Verdicts(["a", "b", "c"], ["j1", "j2", "j3"], probabilities).votes().tolist() == [0]
    np.testing.assert_allclose(Verdicts(["a", "b", "c"], ["j1", "j2", "j3"], probabilities).soft_scores("b"),
                               [0.5666666666666667])


TEXTS = ["good great film", "great fun", "bad awful film", "awful boring", "good fun", "boring bad plot",
         "great great", "awful awful"]
LABELS = ["pos", "pos", "neg", "neg", "pos", "neg", "pos", "neg"]


def test_a_non_voting_judge_is_scored_but_does_not_vote():
    # VADER (in NON_VOTING) says negative with certainty; the two voting judges lean positive.
    probabilities = np.array([[[1.0, 0.0]], [[0.4, 0.6]], [[0.45, 0.55]]])
    verdicts = Verdicts(["negative", "positive"], ["vader", "a", "b"], probabilities)
    assert verdicts.voting == [False, True, True]
    assert verdicts.votes().tolist() == [1]
    np.testing.assert_allclose(verdicts.soft_scores("positive"), [0.575])  # (0.6 + 0.55) / 2, VADER left out
    assert verdicts.judge_hits("negative")["vader"].tolist() == [True]  # its own hit rate is still kept
    # With VADER voting the majority is still positive (2 : 1), but the soft score falls to (0 + 0.6 + 0.55) / 3.
    all_vote = Verdicts(["negative", "positive"], ["vader", "a", "b"], probabilities, [True] * 3)
    assert all_vote.votes().tolist() == [1]
    np.testing.assert_allclose(all_vote.soft_scores("positive"), [1.15 / 3])
    # VADER alone still votes (a panel of non-voters only).
    assert Verdicts(["negative", "positive"], ["vader"], probabilities[:1]).votes().tolist() == [0]


def test_linear_heads_match_scikit_learn_and_survive_save_and_load(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    tfidf = NgramVectorizer.fit(TEXTS, NgramSettings("tfidf", min_df=1))
    features = tfidf.transform(TEXTS)
    head = fit_logistic_regression(features, LABELS, ["neg", "pos"], c=3.0)
    reference = LogisticRegression(C=3.0, max_iter=2000, random_state=0).fit(features, LABELS)
    # Hand-computed softmax of the stored rows vs scikit-learn's sigmoid: same up to rounding.
    np.testing.assert_allclose(head.predict_proba(features), reference.predict_proba(features), atol=1e-12)

    counts = NgramVectorizer.fit(TEXTS, NgramSettings("counts", ngram_max=1, min_df=1))
    nb = fit_naive_bayes(counts.transform(TEXTS), LABELS, ["neg", "pos"])
    reference_nb = MultinomialNB().fit(counts.transform(TEXTS), LABELS)
    np.testing.assert_allclose(nb.predict_proba(counts.transform(TEXTS)),
                               reference_nb.predict_proba(counts.transform(TEXTS)), atol=1e-12)

    judges = [LinearJudge("tfidf", "sentiment", ["neg", "pos"], "tfidf", head, tfidf, 64),
              LinearJudge("nb", "sentiment", ["neg", "pos"], "counts", nb, counts, 64),
              VaderJudge(max_words=64)]
    new = ["a good film", "an awful plot", "something unseen"]
    for judge in judges:
        judge.save(tmp_path / judge.name)
        assert not list((tmp_path / judge.name).glob("*.pkl")) and not list((tmp_path / judge.name).glob("*.joblib"))
        reloaded = load_judge(tmp_path / judge.name)
        np.testing.assert_array_equal(reloaded.predict_proba(new), judge.predict_proba(new))


def test_three_class_head_and_minilm_judge_reload(tmp_path):
    texts = ["the match ended in a draw", "the striker scored", "shares fell", "profits rose at the bank",
             "the new phone software", "faster computer chips"]
    labels = ["sport", "sport", "business", "business", "tech", "tech"]
    classes = ["business", "sport", "tech"]
    embeddings = embed_minilm(texts)
    assert embeddings.shape == (6, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    head = fit_logistic_regression(embeddings, labels, classes, c=10.0)
    assert head.weight.shape == (3, 384)
    judge = LinearJudge("minilm", "topic", classes, "minilm", head, None, 64)
    judge.save(tmp_path / "minilm")
    reloaded = load_judge(tmp_path / "minilm")
    assert isinstance(reloaded.head, LinearHead)
    np.testing.assert_allclose(reloaded.predict_proba(texts), judge.predict_proba(texts), atol=1e-7)
    assert (judge.predict_proba(texts).argmax(axis=1) == [classes.index(x) for x in labels]).all()


def test_vader_maps_compound_to_probability():
    probs = VaderJudge().predict_proba(["I love this, it is wonderful!", "I hate this, it is awful.", "A table."])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 1] > 0.8 and probs[1, 0] > 0.8
    assert probs[2].tolist() == [0.5, 0.5]  # compound 0 → undecided


def test_an_undecided_judge_splits_its_vote_and_never_hits():
    # VADER-like judge undecided (0.5/0.5) and voting; the other two disagree: the mean probability decides.
    probabilities = np.array([[[0.5, 0.5]], [[0.8, 0.2]], [[0.3, 0.7]]])
    verdicts = Verdicts(["negative", "positive"], ["vader", "a", "b"], probabilities, voting=[True, True, True])
    assert verdicts.votes().tolist() == [0]  # votes 1.5 : 1.5, mean P = 0.533 : 0.467
    assert verdicts.judge_hits("negative")["vader"].tolist() == [False]
    assert verdicts.judge_hits("positive")["vader"].tolist() == [False]


def test_the_cache_key_follows_settings_and_data():
    from loracompose.evaluate.attributes import ATTRIBUTES
    from loracompose.evaluate.panel import _panel_key

    spec, data = ATTRIBUTES["sentiment"], {"rotten_tomatoes": "aa", "imdb": "bb", "tweets": "cc"}
    key = _panel_key(spec, TEST_SETTINGS, data)
    assert key == _panel_key(spec, JudgeSettings(embed_per_label=80, ngram_per_label=1500, test_per_label=100), data)
    assert key != _panel_key(spec, JudgeSettings(embed_per_label=81, ngram_per_label=1500, test_per_label=100), data)
    assert key != _panel_key(spec, TEST_SETTINGS, {**data, "imdb": "changed"})
    assert key != _panel_key(ATTRIBUTES["topic"], TEST_SETTINGS, data)
