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

Only *voting* judges enter the vote and the soft score (J counts them alone).
A judge too weak to vote — VADER, 0.64 on Rotten Tomatoes test against 0.75 for
the MiniLM judge — is still scored and its hit rate reported, as an independent
lexicon signal: with it voting, the sentiment vote on Rotten Tomatoes fell from
0.783 to 0.765 (judges trained on Rotten Tomatoes' judge split, its 878 test
texts). `NON_VOTING` names them; `Verdicts(voting=...)` overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NON_VOTING = frozenset({"vader", "lexicons"})  # judges reported beside the vote but not in it


@dataclass
class Verdicts:
    """All judges' probabilities for one attribute on n texts."""

    labels: list[str]
    judges: list[str]
    probabilities: np.ndarray  # (judges, n, labels)
    voting: list[bool] | None = None  # which judges vote; None: all but those in NON_VOTING

    def __post_init__(self):
        if self.voting is None:
            self.voting = [name not in NON_VOTING for name in self.judges]
        if not any(self.voting):  # a panel of non-voters only (VADER alone): they vote after all
            self.voting = [True] * len(self.judges)

    @property
    def _voters(self) -> np.ndarray:  # (voting judges, n, labels)
        return self.probabilities[np.asarray(self.voting, dtype=bool)]

    @property
    def mean(self) -> np.ndarray:  # (n, labels), over the voting judges
        return self._voters.mean(axis=0)

    def votes(self) -> np.ndarray:
        """(n,) index of the voted label."""
        voters = self._voters
        top = voters == voters.max(axis=2, keepdims=True)  # (voting judges, n, labels)
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
