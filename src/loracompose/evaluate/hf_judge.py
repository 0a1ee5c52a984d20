"""A user's own judge: a local Hugging Face text-classification model directory.

The directory needs a label mapping from the model's labels to an attribute's
labels, given either
  - in `loracompose-judge.json`:
        {"attribute": "sentiment", "labels": {"LABEL_0": "negative", "LABEL_1": "positive"}}
    (keys are the model's label names from config.json `id2label`, or class
    indices as strings); or
  - by config.json `id2label` itself, when its names are exactly labels of a
    built-in attribute (e.g. {"0": "negative", "1": "positive"}).

Several model labels may map to one attribute label (their probabilities add);
model labels left out of the mapping (e.g. "neutral") are dropped and the rest
renormalised:  P(a | x) = Σ_{m ↦ a} P(m | x) / Σ_{m mapped} P(m | x).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from loracompose.errors import LoraComposeError
from loracompose.evaluate.attributes import ATTRIBUTES
from loracompose.evaluate.judges import first_words

MAPPING_FILE = "loracompose-judge.json"
_BUILTIN_LABELS = "; ".join(f"{a.name}: {', '.join(a.labels)}" for a in ATTRIBUTES.values())
_MAPPING_HELP = (
    f'add {MAPPING_FILE} with {{"attribute": "sentiment", "labels": {{"LABEL_0": "negative", "LABEL_1": "positive"}}}}, '
    f"or give config.json an id2label whose names are an attribute's labels ({_BUILTIN_LABELS})"
)


def _mapping(directory: Path, id2label: dict[int, str]) -> tuple[str, dict[int, str]]:
    """(attribute, model class index → attribute label)."""
    file = directory / MAPPING_FILE
    if file.is_file():
        try:
            spec = json.loads(file.read_text())
            attribute, labels = spec["attribute"], spec["labels"]
            if not isinstance(attribute, str) or not isinstance(labels, dict) or not labels:
                raise TypeError
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise LoraComposeError(f"judge mapping '{file}' is not valid: {_MAPPING_HELP}") from exc
        by_name = {name: index for index, name in id2label.items()}
        mapping = {}
        for model_label, label in labels.items():
            if model_label in by_name:
                mapping[by_name[model_label]] = str(label)
            elif model_label.isdigit() and int(model_label) in id2label:
                mapping[int(model_label)] = str(label)
            else:
                raise LoraComposeError(
                    f"judge mapping '{file}' names model label '{model_label}', which the model lacks; "
                    f"its labels are {', '.join(id2label.values())}"
                )
        if attribute in ATTRIBUTES:
            unknown = sorted(set(mapping.values()) - set(ATTRIBUTES[attribute].labels))
            if unknown:
                raise LoraComposeError(
                    f"judge mapping '{file}' maps to unknown {attribute} label(s) {', '.join(unknown)}; "
                    f"accepted: {', '.join(ATTRIBUTES[attribute].labels)}"
                )
        return attribute, mapping
    for spec in ATTRIBUTES.values():
        if set(id2label.values()) == set(spec.labels):
            return spec.name, dict(id2label)
    raise LoraComposeError(f"judge directory '{directory}' has no label mapping: {_MAPPING_HELP}")


def _fingerprint(directory: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(directory)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


@dataclass
class HFJudge:
    name: str
    attribute: str
    labels: list[str]
    directory: Path
    mapping: dict[int, str]  # model class index → attribute label
    model: object = field(repr=False)
    tokenizer: object = field(repr=False)
    fingerprint: str = ""
    max_words: int | None = None
    batch_size: int = 16

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)))
        for start in range(0, len(texts), self.batch_size):
            chunk = [first_words(t, self.max_words) for t in texts[start : start + self.batch_size]]
            batch = self.tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=256)
            with torch.no_grad():
                probs = self.model(**batch).logits.float().softmax(dim=-1).numpy()  # (b, model labels)
            for index, label in self.mapping.items():
                out[start : start + len(chunk), self.labels.index(label)] += probs[:, index]
        total = out.sum(axis=1, keepdims=True)
        return out / np.where(total > 0, total, 1.0)

    def describe(self) -> dict:
        return {"name": self.name, "kind": "hf", "model": f"Hugging Face classifier {self.directory}",
                "fingerprint": self.fingerprint,
                "mapping": {str(k): v for k, v in sorted(self.mapping.items())}}


def load_hf_judge(path: str | Path, max_words: int | None = None) -> HFJudge:
    """A local text-classification model directory with a label mapping, ready to judge."""
    directory = Path(path).expanduser()
    if not directory.is_dir() or not (directory / "config.json").is_file():
        raise LoraComposeError(
            f"judge '{path}' is not a Hugging Face model directory (config.json + weights + tokenizer)"
        )
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(directory)
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    attribute, mapping = _mapping(directory, id2label)
    labels = list(ATTRIBUTES[attribute].labels) if attribute in ATTRIBUTES else sorted(set(mapping.values()))
    try:
        # safetensors only, as every other loader here: a pickled .bin is never unpickled
        model = AutoModelForSequenceClassification.from_pretrained(directory, use_safetensors=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as exc:
        raise LoraComposeError(f"could not load judge model '{path}': {exc}") from exc
    return HFJudge(f"hf:{directory.name}", attribute, labels, directory.resolve(), mapping, model, tokenizer,
                   _fingerprint(directory), max_words)
