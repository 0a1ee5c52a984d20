"""An attribute dataset: cleaned labelled texts with a deterministic split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from loracompose.data.builtin import BUILTIN_DATASETS
from loracompose.data.clean import clean_frame
from loracompose.data.split import SPLITS, SplitSizes, assign_splits
from loracompose.data.userfiles import read_user_file
from loracompose.errors import LoraComposeError


@dataclass(frozen=True)
class DataOptions:
    """How to read a dataset. Column names apply to user files; `min_confidence` to `tweets`."""

    text_column: str = "text"
    label_column: str = "label"
    attribute: str | None = None  # attribute name for user files (default "label")
    min_confidence: float | None = None
    sizes: SplitSizes = field(default_factory=SplitSizes)


@dataclass
class AttributeDataset:
    """Cleaned texts with labels and a split.

    frame: columns `text`, `label`, `split`, sorted by (label, text).
    content_hash: SHA-256 of the cleaned records and their splits — what a module
    records so a result can be traced to the exact data it was trained on.
    """

    name: str
    attribute: str
    labels: list[str]
    frame: pd.DataFrame
    source: str
    content_hash: str

    def texts(self, split: str, label: str | None = None) -> list[str]:
        if split not in SPLITS:
            raise LoraComposeError(f"unknown split '{split}'; accepted: {', '.join(SPLITS)}")
        rows = self.frame[self.frame["split"] == split]
        if label is not None:
            self.check_label(label)
            rows = rows[rows["label"] == label]
        return rows["text"].tolist()

    def check_label(self, label: str) -> None:
        if label not in self.labels:
            raise LoraComposeError(
                f"unknown label '{label}' for dataset '{self.name}'; its labels are {', '.join(self.labels)}"
            )

    def counts(self) -> pd.DataFrame:
        """Examples per label (rows) and split (columns)."""
        table = self.frame.groupby(["label", "split"]).size().unstack(fill_value=0)
        return table.reindex(columns=list(SPLITS), fill_value=0)


def _hash_frame(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    for text, label, split in frame[["text", "label", "split"]].itertuples(index=False):
        digest.update(f"{label}\x1f{split}\x1f{text}\x1e".encode("utf-8"))
    return digest.hexdigest()


def known_datasets_message() -> str:
    return f"built-in datasets: {', '.join(BUILTIN_DATASETS)}; or a path to a JSONL, CSV or Parquet file"


def load_attribute_dataset(spec: str, options: DataOptions | None = None) -> AttributeDataset:
    """Load a built-in dataset by name, or a user file / `datasets` directory by path."""
    options = options or DataOptions()
    if spec in BUILTIN_DATASETS:
        builtin = BUILTIN_DATASETS[spec]
        raw = builtin.read(min_confidence=options.min_confidence)
        name, attribute, source = spec, builtin.attribute, f"package {builtin.package}"
    else:
        path = Path(spec).expanduser()
        if not path.exists() and path.suffix.lower() not in (".jsonl", ".json", ".csv", ".parquet"):
            raise LoraComposeError(f"unknown dataset '{spec}'; {known_datasets_message()}")
        raw = read_user_file(path, options.text_column, options.label_column)
        name, attribute, source = path.stem, options.attribute or "label", str(path.resolve())
    frame = clean_frame(raw)
    if frame.empty:
        raise LoraComposeError(f"dataset '{spec}' has no usable text after cleaning")
    frame = frame.assign(split=assign_splits(frame["text"], options.sizes))
    labels = sorted(frame["label"].unique())
    return AttributeDataset(name, attribute, labels, frame, source, _hash_frame(frame))
