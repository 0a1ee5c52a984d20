"""Figure 5 — evaluation throughput: texts/s of the attribute judges and of perplexity scoring.

    judges       each sentiment judge's `predict_proba` on the whole list (batched), against
                 the same judge called once per text (reference: scoring each generation as it comes)
    perplexity   `continuation_nll` with batch_size 8 (length-sorted, padded), against batch_size 1

Texts: `eval_texts` real review snippets (rotten_tomatoes test split) cut to 40
words, the length of a generation; prompts are their first 3 words. On `--quick`
the judges are a TF-IDF + logistic-regression judge fitted on a few synthetic
texts and VADER (no MiniLM), and perplexity uses the tiny model.
"""

from __future__ import annotations

import time

from benchmarks.common import Settings, ratio, summary


def _texts(settings: Settings) -> list[str]:
    if settings.quick:
        words = "the film was good bad slow bright dull and a story with great awful acting".split()
        return [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(40)) for i in range(settings.eval_texts)]
    from loracompose.data import load_attribute_dataset

    dataset = load_attribute_dataset("rotten_tomatoes")
    pool = dataset.texts("test", "positive") + dataset.texts("test", "negative")
    return [" ".join(t.split()[:40]) for t in pool[:: max(1, len(pool) // settings.eval_texts)][: settings.eval_texts]]


def _judges(settings: Settings) -> list:
    from loracompose.evaluate.features import NgramSettings, NgramVectorizer
    from loracompose.evaluate.judges import LinearJudge, VaderJudge
    from loracompose.evaluate.linear import fit_logistic_regression

    if not settings.quick:
        from loracompose.evaluate.panel import judge_panel

        return judge_panel("sentiment", progress=False).judges
    texts = [f"a wonderful film {i}, truly great" for i in range(10)] + [f"a dreadful film {i}, awful" for i in range(10)]
    labels = ["positive"] * 10 + ["negative"] * 10
    tfidf = NgramVectorizer.fit(texts, NgramSettings("tfidf"))
    head = fit_logistic_regression(tfidf.transform(texts), labels, ["negative", "positive"])
    return [LinearJudge("tfidf-logreg", "sentiment", ["negative", "positive"], "tfidf", head, tfidf, 64),
            VaderJudge(max_words=64)]


def _rate(fn, count: int, repeats: int) -> dict:
    fn()  # warm-up: the first call loads lexicons and models
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - start))
    return summary(rates)


def run(settings: Settings, model_dir: str) -> dict:
    from loracompose.evaluate.perplexity import continuation_nll
    from loracompose.models import load_base

    texts = _texts(settings)
    report = {"setting": {"texts": len(texts), "words_per_text": 40, "repeats": settings.repeats,
                          "perplexity_model": settings.model, "perplexity_base": "dense float32"},
              "judges": {}}
    for judge in _judges(settings):
        batched = _rate(lambda: judge.predict_proba(texts), len(texts), settings.repeats)
        single = _rate(lambda: [judge.predict_proba([t]) for t in texts], len(texts), settings.repeats)
        report["judges"][judge.name] = {"batched_texts_per_s": batched, "one_by_one_texts_per_s": single,
                                        "ratio_batched_over_one_by_one": ratio(batched, single)}
    base = load_base(settings.model, quantize=None)
    prompts = [" ".join(t.split()[:3]) for t in texts]
    continuations = [" " + " ".join(t.split()[3:]) for t in texts]
    rows = {}
    for batch_size in (8, 1):
        rows[batch_size] = _rate(lambda: continuation_nll(base.model, base.tokenizer, prompts, continuations,
                                                          batch_size=batch_size), len(texts), settings.repeats)
    report["perplexity"] = {"batch_8_texts_per_s": rows[8], "batch_1_texts_per_s": rows[1],
                            "ratio_batch_8_over_batch_1": ratio(rows[8], rows[1])}
    return report
