"""What a reader notices before the attribute: does the text follow its prompt, and is it made of words?

relevance(prompt, continuation) = cos(e(prompt), e(continuation))
    e: all-MiniLM-L6-v2 sentence embeddings (packaged, L2-normalised), so the cosine is a dot
    product. A continuation that drops the prompt's subject for sport words scores lower than
    one that carries on with it. Absolute values depend on prompt length (a 2-word prompt
    says little), so conditions are compared *relative to the base's* relevance on the same
    prompts: relevance ratio = mean relevance / the base's mean relevance.

non-word rate = (words no English word list knows) / (words)
    words: maximal runs of letters (any script) in the continuation, lower-cased; capitalised
    words are left out (names: "Chelsea", "Obama" are words a reader accepts, and no word list
    holds them all), and so are runs of one letter. The word list is pyspellchecker's English
    frequency list (~160k words, maintained with the package). Invented words such as
    "saoceátlo" count; so do typos and rare words the list lacks (a floor that the base's own
    rate shows).
"""

from __future__ import annotations

import functools
import re

import numpy as np

from loracompose.evaluate.features import embed

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@functools.lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en").word_frequency.dictionary)


def words_checked(text: str) -> list[str]:
    """The lower-cased words the non-word rate checks (see the module docstring)."""
    out = []
    for match in WORD.finditer(text):
        word = match.group(0)
        if len(word) < 2 or word[0].isupper():
            continue
        out.append(word.lower())
    return out


def non_words(text: str) -> list[str]:
    """The checked words of `text` that the English word list lacks (a possessive 's is dropped first)."""
    known = _known_words()
    missing = []
    for word in words_checked(text):
        stem = word[:-2] if word.endswith("'s") else word
        if word not in known and stem not in known and stem.replace("'", "") not in known:
            missing.append(word)
    return missing


def non_word_counts(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(non-words, words checked) per text, (n,) each: the rate of a set is Σ non-words / Σ words."""
    bad = np.array([len(non_words(t)) for t in texts], dtype=float)
    total = np.array([len(words_checked(t)) for t in texts], dtype=float)
    return bad, total


def relevance(prompts: list[str], continuations: list[str], *, progress: bool = False) -> np.ndarray:
    """(n,) cosine of each prompt's and continuation's MiniLM embeddings (an empty continuation: 0)."""
    unique_prompts = list(dict.fromkeys(prompts))
    prompt_vectors = dict(zip(unique_prompts, embed("minilm", unique_prompts, progress=progress)))
    vectors = embed("minilm", [c if c.strip() else "." for c in continuations], progress=progress)
    scores = np.array([float(prompt_vectors[p] @ v) for p, v in zip(prompts, vectors)])
    return np.where([bool(c.strip()) for c in continuations], scores, 0.0)
