"""Combining several judges of one attribute into hard and soft accuracy.

With J judges and probabilities P_j(label | text):

    vote(text)     = the label most judges rank first; a tie goes to the tied
                     label with the highest mean probability (1/J)·Σ_j P_j.
                     A judge whose top probability is shared by k labels (VADER
                     on a text without sentiment words: 0.5 / 0.5) gives each 1/k.
    hard hit       = [vote(text) == target]
    soft score     = (1/J)·Σ_j P_j(target | text)

Hard accuracy is the mean hard hit over texts, soft accuracy the mean soft
score. Each judge's own hit rate is kept too: a hit when P_j(target) is the
judge's unique highest probability (an undecided judge does not hit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Verdicts:
    """All judges' probabilities for one attribute on n texts."""

    labels: list[str]
    judges: list[str]
    probabilities: np.ndarray  # (judges, n, labels)

    @property
    def mean(self) -> np.ndarray:  # (n, labels)
        return self.probabilities.mean(axis=0)

    def votes(self) -> np.ndarray:
        """(n,) index of the voted label."""
        top = self.probabilities == self.probabilities.max(axis=2, keepdims=True)  # (judges, n, labels)
        counts = (top / top.sum(axis=2, keepdims=True)).sum(axis=0)  # (n, labels): shared top splits a vote
        leaders = counts == counts.max(axis=1, keepdims=True)
        # Among the labels with most votes, the one with the highest mean probability.
        return np.where(leaders, self.mean, -np.inf).argmax(axis=1)

    def hard_hits(self, target: str) -> np.ndarray:
        return self.votes() == self.labels.index(target)

    def soft_scores(self, target: str) -> np.ndarray:
        return self.mean[:, self.labels.index(target)]

    def judge_hits(self, target: str) -> dict[str, np.ndarray]:
        index = self.labels.index(target)
        return {name: unique_hits(self.probabilities[j], index) for j, name in enumerate(self.judges)}


def unique_hits(probabilities: np.ndarray, truth) -> np.ndarray:
    """(n,) bool: the true label's probability is strictly above every other label's."""
    n = probabilities.shape[0]
    truth = np.broadcast_to(np.asarray(truth), (n,))
    true_p = probabilities[np.arange(n), truth]
    others = probabilities.copy()
    others[np.arange(n), truth] = -np.inf
    return true_p > others.max(axis=1)
