"""A sentiment judge nobody here trained: three published lexicons, averaged.

Each lexicon scores a text in [−1, 1]:

    VADER     compound score (Hutto & Gilbert, 2014; rules for negation, intensifiers, "but")
    TextBlob  polarity (the Pattern lexicon of adjectives, with its own negation rule)
    AFINN     sum of word valences (−5…+5), squashed as a / sqrt(a² + 15), VADER's own normalisation

and the ensemble's score is their mean s; P(positive) = (s + 1) / 2. A text with
no sentiment word scores 0 on all three and is undecided (0.5 / 0.5): it hits
neither target. Because none of the three learnt from any corpus the modules
learnt from, this judge is independent of every module by construction; it is
weaker than a trained judge on reviews (measured in the panel). The judge itself is
`judges.LexiconJudge`; this file holds the scoring.
"""

from __future__ import annotations

import functools
import math

import numpy as np


LEXICONS = ("vader", "textblob", "afinn")
PACKAGES = {"vader": "vaderSentiment", "textblob": "textblob", "afinn": "afinn"}  # what ships each lexicon
AFINN_ALPHA = 15.0  # VADER's normalisation constant: a / sqrt(a² + α)
VADER_THRESHOLD = 0.05  # VADER's documented cut-off: compound ≥ 0.05 positive, ≤ −0.05 negative


@functools.lru_cache(maxsize=1)
def _scorers():
    # Loading the three lexicons takes ~0.5 s: once per process. (Written here: each package scores one
    # text at a time; nothing in the stack averages them.)
    from afinn import Afinn
    from textblob import TextBlob
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader, afinn = SentimentIntensityAnalyzer(), Afinn()
    return {
        "vader": lambda t: vader.polarity_scores(t)["compound"],
        "textblob": lambda t: float(TextBlob(t).sentiment.polarity),
        "afinn": lambda t: (lambda a: a / math.sqrt(a * a + AFINN_ALPHA))(float(afinn.score(t))),
    }


def lexicon_scores(texts: list[str], lexicons: tuple[str, ...] = LEXICONS) -> dict[str, np.ndarray]:
    """lexicon name → (n,) scores in [−1, 1], for each of `lexicons`."""
    scorers = _scorers()
    return {name: np.array([scorers[name](t) for t in texts], dtype=float) for name in lexicons}

