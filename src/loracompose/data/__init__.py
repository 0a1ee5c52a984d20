"""Attribute datasets: built-in (packaged) and user files, cleaned and split deterministically."""

from loracompose.data.builtin import BUILTIN_DATASETS
from loracompose.data.dataset import AttributeDataset, DataOptions, load_attribute_dataset
from loracompose.data.mixing import Mixing, mix_sources
from loracompose.data.split import SPLITS, SplitSizes

__all__ = [
    "BUILTIN_DATASETS",
    "SPLITS",
    "AttributeDataset",
    "DataOptions",
    "Mixing",
    "SplitSizes",
    "load_attribute_dataset",
    "mix_sources",
]
