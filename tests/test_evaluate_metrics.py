"""Metrics on hand-built inputs with known answers: distinct-n, repetition, perplexity, significance."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import binomtest, bootstrap

from loracompose import LoraComposeError
from loracompose.evaluate.diversity import diversity, distinct_n, repeated_n, words
from loracompose.evaluate.perplexity import continuation_nll, perplexity
from loracompose.evaluate.significance import bootstrap_mean, holm, mcnemar_exact, paired_bootstrap


# ---------------------------------------------------------------- diversity

def test_words_split_punctuation_and_lowercase():
    assert words("The cat, the HAT!") == ["the", "cat", ",", "the", "hat", "!"]


def test_distinct_n_known_answers():
    texts = ["a b a b", "a b c"]
    assert distinct_n(texts, 1) == (3, 7)  # a, b, c of 7 unigrams
    assert distinct_n(texts, 2) == (3, 5)  # ab, ba, bc of ab ba ab | ab bc
    assert distinct_n(texts, 3) == (3, 3)  # aba, bab | abc
    assert distinct_n(["a"], 2) == (0, 0)


def test_diversity_averages_distinct_over_prompts_not_texts():
    # Prompt P1 has three identical samples (distinct-1 = 2/6), P2 one varied one (distinct-1 = 1).
    result = diversity(["P1", "P1", "P1", "P2"], ["x y", "x y", "x y", "u v"])
    assert result.distinct[1] == pytest.approx((2 / 6 + 1.0) / 2)  # pooled over texts it would be 4/8
    assert result.distinct[2] == pytest.approx((1 / 3 + 1.0) / 2)
    assert result.distinct[3] is None  # no text has three words
    assert result.prompts == 2


def test_repeated_n_is_pooled_over_texts():
    # "a b a b a b": bigrams ab ba ab ba ab → 3 repeats of 5; "c d": 0 of 1 → 3/6.
    assert repeated_n(["a b a b a b", "c d"], 2) == pytest.approx(3 / 6)
    assert repeated_n(["x"], 2) is None
    assert diversity(["p"], ["one two three four five"]).repeated == {2: 0.0, 3: 0.0, 4: 0.0}


# ---------------------------------------------------------------- perplexity

class CharTokenizer:
    """'a'..'z' → 0..25; BOS = 26 (or none); pad = 27."""

    pad_token_id = 27

    def __init__(self, add_bos: bool, has_bos: bool = True):
        self.add_bos, self.bos_token_id = add_bos, 26 if has_bos else None

    def __call__(self, text, add_special_tokens=True):
        ids = [ord(c) - 97 for c in text if c != " "]
        return {"input_ids": ([self.bos_token_id] if add_special_tokens and self.add_bos else []) + ids}


class NextLetterModel(torch.nn.Module):
    """Known logits: after token t the next token t+1 has logit L, every other token 0 (vocab 28).

    So log P(t+1 | t) = L − log(e^L + 27) and log P(other | t) = −log(e^L + 27). Padding must
    not matter: the model ignores attention_mask, so only the scored positions can make it right.
    """

    vocab, big = 28, 3.0

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        nxt = (input_ids + 1) % self.vocab
        logits.scatter_(2, nxt[..., None], self.big)
        return SimpleNamespace(logits=logits)


HIT = -(NextLetterModel.big - math.log(math.exp(NextLetterModel.big) + 27))  # NLL of the expected letter
MISS = math.log(math.exp(NextLetterModel.big) + 27)  # NLL of any other letter


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_continuation_nll_counts_only_continuation_tokens(batch_size):
    prompts = ["abc", "x", "", "ab"]
    texts = ["de", "zzzz", "ab", ""]  # hits: d,e | misses: z(after x→y expected), z,z,z → z after z expects a
    nll, tokens = continuation_nll(NextLetterModel(), CharTokenizer(add_bos=False, has_bos=False), prompts,
                                   texts, batch_size=batch_size)
    assert tokens.tolist() == [2, 4, 1, 0]  # empty prompt without BOS: first token unscored; empty text: none
    np.testing.assert_allclose(nll, [2 * HIT, 4 * MISS, HIT, 0.0], rtol=1e-6)
    # Token-weighted: exp(total NLL / total tokens), not the mean of per-text perplexities.
    expected = math.exp((3 * HIT + 4 * MISS) / 7)
    assert perplexity(nll, tokens) == pytest.approx(expected)
    per_text_mean = np.mean([math.exp(n / t) for n, t in zip(nll, tokens) if t])
    assert abs(per_text_mean - expected) > 1.0


@pytest.mark.parametrize("add_bos", [True, False])
def test_bos_gives_the_first_token_a_context(add_bos):
    # With add_bos=False the empty prompt is replaced by BOS all the same.
    nll, tokens = continuation_nll(NextLetterModel(), CharTokenizer(add_bos=add_bos), ["", "a"], ["ab", "b"])
    assert tokens.tolist() == [2, 1]  # 'a' scored after BOS (26 → 27 expected: a miss), 'b' after 'a' (a hit)
    np.testing.assert_allclose(nll, [MISS + HIT, HIT], rtol=1e-6)
    assert perplexity([0.0], [0]) is None


def test_perplexity_on_a_tiny_model_is_batch_invariant(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = ["The movie", "Once upon a time", "The lake", "Hello"]
    texts = [" was great fun.", " there lived a very old king who loved gold", " is calm", " world"]
    one, t1 = continuation_nll(model, tokenizer, prompts, texts, batch_size=1)
    many, t4 = continuation_nll(model, tokenizer, prompts, texts, batch_size=4)
    assert t1.tolist() == t4.tolist() and min(t1) > 0
    np.testing.assert_allclose(one, many, rtol=1e-4)  # right padding + mask: padding changes nothing
    # By hand for the first text: the model's log-probabilities of the continuation tokens.
    p = tokenizer(prompts[0])["input_ids"]
    c = tokenizer(texts[0], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = model(torch.tensor([p + c])).logits[0].log_softmax(-1)
    by_hand = -sum(float(logp[len(p) - 1 + k, c[k]]) for k in range(len(c)))
    assert one[0] == pytest.approx(by_hand, rel=1e-5)


# ---------------------------------------------------------------- significance

@pytest.mark.parametrize("a_only,b_only", [(0, 0), (4, 1), (1, 9), (10, 10), (3, 17), (120, 80)])
def test_mcnemar_equals_the_exact_binomial_test(a_only, b_only):
    both, neither = 5, 7
    a = [1] * a_only + [0] * b_only + [1] * both + [0] * neither
    b = [0] * a_only + [1] * b_only + [1] * both + [0] * neither
    result = mcnemar_exact(a, b)
    assert (result.a_only, result.b_only) == (a_only, b_only)
    expected = 1.0 if a_only + b_only == 0 else binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-9)


def test_mcnemar_worked_example():
    # b = 1, c = 6: p = 2·(C(7,0) + C(7,1))/2^7 = 2·8/128 = 0.125
    assert mcnemar_exact([1] + [0] * 6, [0] + [1] * 6).p_value == pytest.approx(0.125)
    with pytest.raises(LoraComposeError, match="paired hits"):
        mcnemar_exact([1, 0], [1])


def test_paired_bootstrap_agrees_with_scipy_and_is_seeded():
    rng = np.random.default_rng(1)
    a = (rng.random(300) < 0.5).astype(float)
    b = (rng.random(300) < 0.65).astype(float)
    ours = paired_bootstrap(a, b, resamples=20_000, seed=3)
    assert ours.estimate == pytest.approx(b.mean() - a.mean())
    theirs = bootstrap((a, b), lambda x, y, axis: y.mean(axis) - x.mean(axis), paired=True, method="percentile",
                       n_resamples=20_000, random_state=0).confidence_interval
    # Two Monte-Carlo estimates of the same percentiles: agree to within resampling noise (~0.005).
    assert ours.low == pytest.approx(theirs.low, abs=0.01) and ours.high == pytest.approx(theirs.high, abs=0.01)
    assert paired_bootstrap(a, b, resamples=20_000, seed=3) == ours
    # A constant difference has a degenerate interval.
    constant = paired_bootstrap(np.zeros(50), np.full(50, 0.25), resamples=500)
    assert constant.low == constant.high == pytest.approx(0.25)


def test_bootstrap_mean_covers_the_mean():
    scores = np.r_[np.ones(70), np.zeros(30)]
    ci = bootstrap_mean(scores, resamples=5000)
    assert ci.estimate == pytest.approx(0.7)
    # Normal approximation: 0.7 ± 1.96·sqrt(0.21/100) = [0.610, 0.790]
    assert ci.low == pytest.approx(0.61, abs=0.02) and ci.high == pytest.approx(0.79, abs=0.02)


def test_holm_known_answers():
    # Sorted 0.005, 0.01, 0.03, 0.04 × 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 → monotone: 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([0.02]) == [0.02]
    assert holm([]) == []
    with pytest.raises(LoraComposeError, match=r"\[0, 1\]"):
        holm([1.5])


def test_cluster_bootstrap_resamples_whole_prompts():
    rng = np.random.default_rng(5)
    a, b = (rng.random(40) < 0.5).astype(float), (rng.random(40) < 0.7).astype(float)
    prompts = [f"p{i}" for i in range(40)]
    # One sample per prompt: the cluster bootstrap is the plain paired bootstrap (same draws).
    assert paired_bootstrap(a, b, seed=2, groups=prompts) == paired_bootstrap(a, b, seed=2)
    # Three identical samples per prompt carry no more information than one: same interval as the
    # one-per-prompt data, while treating them as independent pairs would narrow it (too optimistic).
    tripled = dict(a_scores=np.repeat(a, 3), b_scores=np.repeat(b, 3))
    clustered = paired_bootstrap(**tripled, seed=2, groups=np.repeat(prompts, 3))
    single = paired_bootstrap(a, b, seed=2)
    assert (clustered.low, clustered.high) == pytest.approx((single.low, single.high))
    naive = paired_bootstrap(**tripled, seed=2)
    assert naive.high - naive.low < 0.75 * (clustered.high - clustered.low)
    with pytest.raises(LoraComposeError, match="label every score"):
        bootstrap_mean([1.0, 0.0], groups=["p"])


def test_bootstrap_mean_of_means_draws_the_same_prompts_for_every_direction():
    from loracompose.evaluate.significance import bootstrap_mean_of_means

    rng = np.random.default_rng(7)
    prompts = [f"p{i:02d}" for i in range(30)]
    x = (rng.random(30) < 0.6).astype(float)
    # One list, groups in sorted order: the same draws as the cluster bootstrap of its mean.
    one = bootstrap_mean_of_means([x], [prompts], seed=3)
    plain = bootstrap_mean(x, groups=prompts, seed=3)
    assert (one.estimate, one.low, one.high) == pytest.approx((plain.estimate, plain.low, plain.high))
    # x toward one label, 1 − x toward the other, records in another order: every draw takes the same
    # prompts for both, so each resampled mean of means is exactly 1/2 (independent draws would spread).
    order = rng.permutation(30)
    both = bootstrap_mean_of_means([x, 1 - x[order]], [prompts, [prompts[i] for i in order]], seed=3)
    assert (both.estimate, both.low, both.high) == pytest.approx((0.5, 0.5, 0.5))
    # Known answer with unequal sample counts: mean of the two means, not the pooled mean.
    est = bootstrap_mean_of_means([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0]], [["a", "a", "b", "b"], ["a", "b"]],
                                  resamples=50).estimate
    assert est == pytest.approx((0.75 + 0.0) / 2)
    with pytest.raises(LoraComposeError, match="same groups"):
        bootstrap_mean_of_means([[1.0], [0.0]], [["a"], ["b"]])
