"""Datasets as the stages use them: seeded, disjoint train / val / test splits of a catalog
dataset (``load_dataset``), and the space fitted to them."""

from workers.data.base import DatasetError, DatasetSplits
from workers.data.pipeline import Augment, augment_batch, sample_resolution
from workers.data.registry import list_datasets, load_dataset
from workers.data.spaces import space_options_for

__all__ = [
    "Augment",
    "DatasetError",
    "DatasetSplits",
    "augment_batch",
    "list_datasets",
    "load_dataset",
    "sample_resolution",
    "space_options_for",
]
