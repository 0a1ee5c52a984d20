"""A linear classifier head, stored as plain arrays (safetensors + JSON), never pickled.

Both judge heads are linear in their features x:

    logistic regression   z = W·x + b                                   (multinomial)
    multinomial NB        z = log θ·x + log π     (log θ_cf = log P(word f | class c))

and P(c | x) = softmax(z)_c. scikit-learn fits them; only W (classes × features)
and b are kept, and the probabilities are computed here from those arrays. For
two classes scikit-learn's logistic regression keeps one row w with
P(class 1) = σ(w·x + b); it is stored as the rows (−w/2, w/2) and biases
(−b/2, b/2), whose softmax is the same σ(w·x + b).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file


@dataclass
class LinearHead:
    classes: list[str]
    weight: np.ndarray  # (classes, features)
    bias: np.ndarray  # (classes,)

    def logits(self, features) -> np.ndarray:
        """features: (n, features) dense array or scipy sparse matrix → (n, classes)."""
        return np.asarray(features @ self.weight.T) + self.bias

    def predict_proba(self, features) -> np.ndarray:
        z = self.logits(features)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, directory: Path, stem: str = "head") -> None:
        save_file({"weight": np.ascontiguousarray(self.weight, dtype=np.float64),
                   "bias": np.ascontiguousarray(self.bias, dtype=np.float64)},
                  str(directory / f"{stem}.safetensors"))
        (directory / f"{stem}.json").write_text(json.dumps({"classes": self.classes}))

    @classmethod
    def load(cls, directory: Path, stem: str = "head") -> "LinearHead":
        arrays = load_file(str(directory / f"{stem}.safetensors"))
        classes = json.loads((directory / f"{stem}.json").read_text())["classes"]
        return cls(classes, arrays["weight"], arrays["bias"])


def fit_logistic_regression(features, labels: list[str], classes: list[str], *, c: float = 1.0,
                            seed: int = 0) -> LinearHead:
    """L2-regularised logistic regression (lbfgs), as a LinearHead over `classes`."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(features, labels)
    fitted = [str(x) for x in model.classes_]
    if len(fitted) == 2:
        w, b = model.coef_[0], model.intercept_[0]
        weight, bias = np.stack([-w / 2, w / 2]), np.array([-b / 2, b / 2])
    else:
        weight, bias = model.coef_, model.intercept_
    return _reorder(LinearHead(fitted, weight, bias), classes)


def fit_naive_bayes(counts, labels: list[str], classes: list[str], *, alpha: float = 1.0) -> LinearHead:
    """Multinomial naive Bayes on word counts: W = log θ, b = log π."""
    from sklearn.naive_bayes import MultinomialNB

    model = MultinomialNB(alpha=alpha).fit(counts, labels)
    head = LinearHead([str(x) for x in model.classes_], model.feature_log_prob_, model.class_log_prior_)
    return _reorder(head, classes)


def _reorder(head: LinearHead, classes: list[str]) -> LinearHead:
    """Rows in the order of `classes` (every class must have been seen in training)."""
    missing = [c for c in classes if c not in head.classes]
    if missing:
        raise ValueError(f"no training examples for class(es) {missing}")
    order = [head.classes.index(c) for c in classes]
    return LinearHead(list(classes), head.weight[order], head.bias[order])
