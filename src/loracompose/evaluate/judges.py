"""Attribute judges: classifiers that give P(label | text) for one attribute.

Every judge answers `predict_proba(texts) → (n, labels)` with rows summing to 1,
columns in the order of `labels`. Kinds:

- `linear` — features (a packaged encoder's sentence embeddings, see
  `features.ENCODERS`, TF-IDF n-grams or word counts) and a linear head (logistic regression or naive Bayes), see `linear.py`;
- `vader` — the VADER sentiment lexicon (rule-based, no training), its compound
  score c ∈ [−1, 1] mapped to P(positive) = (c + 1) / 2;
- `lexicon` — VADER, TextBlob and AFINN averaged (`lexicon.py`; the independent judge of last resort);
- `hf` — a user's Hugging Face text-classification model (`hf_judge.py`).

A judge sees each text cut to its first `max_words` words, as in training.
Judges are stored as JSON and safetensors only (`save` / `load_judge`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from loracompose.evaluate.features import ENCODERS, NgramVectorizer, embed, encoder_version
from loracompose.evaluate.lexicon import LEXICONS, PACKAGES, lexicon_scores
from loracompose.evaluate.linear import LinearHead


class Judge(Protocol):
    name: str
    attribute: str
    labels: list[str]

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...

    def describe(self) -> dict: ...


def first_words(text: str, max_words: int | None) -> str:
    if not max_words:
        return text
    return " ".join(text.split()[:max_words])


@dataclass
class LinearJudge:
    """Features → linear head. features: an encoder name ("minilm", "mpnet"), or "tfidf"/"counts"
    with their NgramVectorizer."""

    name: str
    attribute: str
    labels: list[str]
    features: str  # an encoder in features.ENCODERS | "tfidf" | "counts"
    head: LinearHead
    vectorizer: NgramVectorizer | None = None
    max_words: int | None = None
    progress: bool = False

    def featurise(self, texts: list[str]):
        texts = [first_words(t, self.max_words) for t in texts]
        if self.features in ENCODERS:
            return embed(self.features, texts, progress=self.progress)
        return self.vectorizer.transform(texts)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.head.predict_proba(self.featurise(texts))

    def describe(self) -> dict:
        if self.features in ENCODERS:
            encoder = ENCODERS[self.features]
            model = f"{encoder.model} embeddings ({encoder.packages[0]} {encoder_version(encoder.name)})"
        else:
            model = {"tfidf": "TF-IDF word n-grams", "counts": "word n-gram counts"}[self.features]
        head = "naive Bayes" if self.features == "counts" else "logistic regression"
        return {"name": self.name, "kind": "linear", "model": f"{model} + {head}"}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "judge.json").write_text(json.dumps({
            "kind": "linear", "name": self.name, "attribute": self.attribute, "labels": self.labels,
            "features": self.features, "max_words": self.max_words}, indent=2))
        self.head.save(directory)
        if self.vectorizer is not None:
            self.vectorizer.save(directory)


@dataclass
class LexiconJudge:
    """The mean score s ∈ [−1, 1] of sentiment lexicons as P(positive) = (s + 1)/2 (labels negative, positive).

    `lexicons` names them (see lexicon.py): ("vader",) is VADER's compound alone; the default, all three,
    is the independent judge of last resort (it learnt from no corpus).
    """

    name: str = "lexicons"
    attribute: str = "sentiment"
    labels: tuple = ("negative", "positive")
    max_words: int | None = None
    lexicons: tuple[str, ...] = LEXICONS

    def __post_init__(self):
        self.labels, self.lexicons = list(self.labels), tuple(self.lexicons)

    @property
    def kind(self) -> str:
        return "vader" if self.lexicons == ("vader",) else "lexicon"

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        texts = [first_words(t, self.max_words) for t in texts]
        scores = lexicon_scores(texts, self.lexicons)
        mean = np.mean(np.stack([scores[name] for name in self.lexicons]), axis=0) if texts else np.zeros(0)
        positive = (mean + 1) / 2
        return np.stack([1 - positive, positive], axis=1).reshape(len(texts), 2)

    def describe(self) -> dict:
        from importlib.metadata import version

        packages = ", ".join(f"{PACKAGES[n]} {version(PACKAGES[n])}" for n in self.lexicons)
        if self.kind == "vader":
            return {"name": self.name, "kind": "vader",
                    "model": f"VADER lexicon ({packages}), P(positive) = (compound + 1)/2"}
        return {"name": self.name, "kind": "lexicon",
                "model": f"mean of the {', '.join(self.lexicons)} lexicons ({packages}); P(positive) = (s + 1)/2"}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "judge.json").write_text(json.dumps({
            "kind": self.kind, "name": self.name, "attribute": self.attribute, "labels": self.labels,
            "max_words": self.max_words, "lexicons": list(self.lexicons)}, indent=2))


def VaderJudge(name: str = "vader", attribute: str = "sentiment", labels=("negative", "positive"),  # noqa: N802
               max_words: int | None = None) -> LexiconJudge:
    """VADER's compound score c ∈ [−1, 1] as P(positive) = (c + 1)/2: a lexicon judge of VADER alone."""
    return LexiconJudge(name, attribute, labels, max_words, ("vader",))


def load_judge(directory: Path) -> Judge:
    """A judge saved by `save` (JSON + safetensors only)."""
    meta = json.loads((directory / "judge.json").read_text())
    if meta["kind"] in ("vader", "lexicon"):
        lexicons = ("vader",) if meta["kind"] == "vader" else tuple(meta.get("lexicons", LEXICONS))
        return LexiconJudge(meta["name"], meta["attribute"], meta["labels"], meta.get("max_words"), lexicons)
    if meta["kind"] == "linear":
        vectorizer = NgramVectorizer.load(directory) if meta["features"] not in ENCODERS else None
        return LinearJudge(meta["name"], meta["attribute"], meta["labels"], meta["features"],
                           LinearHead.load(directory), vectorizer, meta.get("max_words"))
    raise ValueError(f"unknown judge kind {meta['kind']!r} in {directory}")
