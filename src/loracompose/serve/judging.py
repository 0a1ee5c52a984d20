"""The attribute judges' scores of a text, for the playground (`POST /v1/judge`).

The built-in judge panels (`evaluate.panel.judge_panel`) of the chosen attributes
load in a background thread at start-up: from the cache in seconds, or trained
once (minutes) when absent. Until a panel is ready its attribute is listed as
pending. A score is the panel's vote and the judges' mean probability per label
(`evaluate.ensemble.Verdicts`).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from loracompose.errors import LoraComposeError
from loracompose.evaluate.attributes import ATTRIBUTES
from loracompose.evaluate.ensemble import Verdicts
from loracompose.evaluate.panel import judge_panel

log = logging.getLogger(__name__)


def judged_attributes(spec: str, module_attributes: list[str | None]) -> list[str]:
    """'none' → []; 'auto' → the modules' attributes that have built-in judges; else a comma list."""
    if spec == "none":
        return []
    if spec == "auto":
        return sorted({a for a in module_attributes if a in ATTRIBUTES})
    names = [a.strip() for a in spec.split(",") if a.strip()]
    unknown = [a for a in names if a not in ATTRIBUTES]
    if unknown:
        raise LoraComposeError(f"no built-in judges for attribute '{unknown[0]}'; accepted: "
                               f"{', '.join(ATTRIBUTES)}, 'auto' or 'none'")
    return names


class JudgeService:
    def __init__(self, attributes: list[str], settings=None):
        self.attributes, self.settings = attributes, settings  # settings: evaluate.panel.JudgeSettings
        self.panels: dict = {}
        self.failed: dict[str, str] = {}
        self.lock = threading.Lock()  # one scoring at a time (MiniLM, TF-IDF share nothing mutable, but CPU does)
        if attributes:
            threading.Thread(target=self._load, name="loracompose-judges", daemon=True).start()

    def _load(self) -> None:
        for attribute in self.attributes:
            try:
                if self.settings is None:
                    self.panels[attribute] = judge_panel(attribute, progress=False)
                else:
                    self.panels[attribute] = judge_panel(attribute, self.settings, progress=False)
                log.info("judges for %s ready", attribute)
            except Exception as exc:  # a missing data package, say: the playground shows why
                self.failed[attribute] = str(exc)
                log.warning("judges for %s unavailable: %s", attribute, exc)

    def status(self) -> dict:
        ready = [a for a in self.attributes if a in self.panels]
        pending = [a for a in self.attributes if a not in self.panels and a not in self.failed]
        return {"attributes": self.attributes, "ready": ready, "pending": pending, "failed": dict(self.failed)}

    def score(self, text: str) -> dict:
        scores = {}
        with self.lock:
            for attribute, panel in list(self.panels.items()):
                probabilities = np.stack([j.predict_proba([text]) for j in panel.judges])  # (judges, 1, labels)
                verdicts = Verdicts(list(panel.labels), [j.name for j in panel.judges], probabilities, panel.voting)
                scores[attribute] = {"vote": panel.labels[int(verdicts.votes()[0])],
                                     "probabilities": {label: round(float(p), 4)
                                                       for label, p in zip(panel.labels, verdicts.mean[0])}}
        return {"scores": scores, **self.status()}
