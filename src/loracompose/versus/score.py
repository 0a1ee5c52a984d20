"""Every text's judgements, fluency and coherence, computed once per generations file and cached.

Per record (judges read prompt + continuation, as a reader does; see evaluate/metrics.py):

    panel         the in-domain sentiment panel's vote ("positive" / "negative")
    independent   the independent judge's verdict ("positive" / "negative" / "undecided"), its P(positive)
    vader         VADER's compound score c (on target past ±0.05)
    lexicons      the three lexicons' mean score s
    relevance     cos(prompt, continuation) under MiniLM (`coherence.relevance`)
    non_words, words   the non-word count and the words checked (`coherence.non_word_counts`)
    nll, tokens   under the reference model, for the texts of the perplexity seeds

A score file is keyed by the generations file's SHA-256 and the judges' identity (panel
directory, independent judge): new texts or another judge recompute it.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np

from loracompose.evaluate.coherence import non_word_counts, relevance
from loracompose.evaluate.generations import read_generations
from loracompose.evaluate.independent import IndependentJudge
from loracompose.evaluate.judges import first_words
from loracompose.evaluate.lexicon import lexicon_scores
from loracompose.evaluate.panel import JudgePanel, _Embeddings, _probabilities
from loracompose.evaluate.perplexity import continuation_nll
from loracompose.paths import write_text_atomic

SCORE_VERSION = 1  # bump when what a score file holds changes


def _verdicts(judge, labels, texts, embeddings) -> tuple[list[str], np.ndarray]:
    probabilities = _probabilities(judge, texts, embeddings)  # (n, 2): negative, positive
    positive = probabilities[:, labels.index("positive")]
    verdict = np.where(positive > 0.5, "positive", np.where(positive < 0.5, "negative", "undecided"))
    return verdict.tolist(), positive


def score_file(path: Path, out: Path, panel: JudgePanel, independent: IndependentJudge, reference,
               perplexity_seeds: tuple[int, ...], embeddings: _Embeddings) -> list[dict]:
    """The per-record scores of one generations file (cached in `out`)."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    key = {"version": SCORE_VERSION, "generations": digest, "panel": panel.provenance.get("directory"),
           "independent": independent.name, "reference": reference.fingerprint["id"] if reference else None,
           "perplexity_seeds": list(perplexity_seeds)}
    if out.is_file():
        cached = json.loads(out.read_text())
        if cached.get("key") == key:
            return cached["records"]
    records = read_generations(path)
    max_words = panel.provenance.get("settings", {}).get("max_words")
    texts = [first_words(r.prompt + r.text, max_words) for r in records]
    voters = [j for j, votes in zip(panel.judges, panel.voting) if votes]
    if len(voters) != 1:
        raise NotImplementedError("versus reads the panel's single voting judge (the sentiment panel has one)")
    panel_verdict, panel_p = _verdicts(voters[0], panel.labels, texts, embeddings)
    if independent.judge is None:  # the panel itself was asked for: its verdicts, not computed again
        independent_verdict, independent_p = panel_verdict, panel_p
    else:
        independent_verdict, independent_p = _verdicts(independent.judge, panel.labels, texts, embeddings)
    lexicons = lexicon_scores(texts)
    mean_lexicon = np.mean(np.stack(list(lexicons.values())), axis=0)
    related = relevance([r.prompt for r in records], [r.text for r in records])
    bad, total = non_word_counts([r.text for r in records])
    scored = [i for i, r in enumerate(records) if r.seed in perplexity_seeds]
    nll = tokens = None
    if reference is not None and scored:
        nll, tokens = continuation_nll(reference.model, reference.tokenizer, [records[i].prompt for i in scored],
                                       [records[i].text for i in scored], batch_size=16)
        nll, tokens = dict(zip(scored, nll)), dict(zip(scored, tokens))
    rows = []
    for i, r in enumerate(records):
        row = {"prompt": r.prompt, "seed": r.seed, "sample": r.sample, "text": r.text,
               "panel": panel_verdict[i], "independent": independent_verdict[i],
               "independent_p": round(float(independent_p[i]), 6), "vader": float(lexicons["vader"][i]),
               "lexicons": round(float(mean_lexicon[i]), 6), "relevance": round(float(related[i]), 6),
               "non_words": int(bad[i]), "words": int(total[i])}
        if nll is not None and i in nll:
            row |= {"nll": float(nll[i]), "tokens": int(tokens[i])}
        rows.append(row)
    write_text_atomic(out, json.dumps({"key": key, "records": rows}) + "\n")
    return rows


def human_line(reference, datasets: tuple[str, ...], out: Path, per_label: int = 40, words: int = 40,
               prompt_words: int = 4) -> dict:
    """The reference's perplexity on human-written texts of each label: for each packaged dataset's test
    split, `per_label` texts a label, the first `prompt_words` words as the prompt and the next `words`
    as the continuation (what a generation is scored as). Cached in `out`."""
    from loracompose.data import load_attribute_dataset

    key = {"reference": reference.fingerprint["id"], "datasets": list(datasets), "per_label": per_label,
           "words": words, "prompt_words": prompt_words}
    if out.is_file() and json.loads(out.read_text()).get("key") == key:
        return json.loads(out.read_text())["line"]
    line = {}
    for label in ("positive", "negative"):
        prompts, texts = [], []
        for name in datasets:
            pool = load_attribute_dataset(name).texts("test", label)
            for text in random.Random(f"human-line:{name}:{label}").sample(pool, min(per_label, len(pool))):
                split = text.split()
                if len(split) <= prompt_words:
                    continue
                prompts.append(" ".join(split[:prompt_words]))
                texts.append(" " + " ".join(split[prompt_words: prompt_words + words]))
        nll, tokens = continuation_nll(reference.model, reference.tokenizer, prompts, texts, batch_size=16)
        line[label] = {"perplexity": float(np.exp(nll.sum() / max(tokens.sum(), 1))), "texts": len(texts),
                       "datasets": list(datasets)}
    write_text_atomic(out, json.dumps({"key": key, "line": line}) + "\n")
    return line
