"""Datasets as the stages use them: seeded, disjoint train / val / test splits of a catalog
dataset (``load_dataset``), and the space fitted to them."""

from workers.data.base import DatasetError, DatasetSplits
from workers.data.registry import list_datasets, load_dataset
from workers.data.spaces import space_options_for

__all__ = [
    "DatasetError",
    "DatasetSplits",
    "list_datasets",
    "load_dataset",
    "space_options_for",
]
