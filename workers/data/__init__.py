"""Datasets: a registry of loaders returning seeded, disjoint train / val / test splits."""

from workers.data.base import DatasetError, DatasetSplits
from workers.data.registry import list_datasets, load_dataset, register_dataset
from workers.data.spaces import space_options_for

__all__ = [
    "DatasetError",
    "DatasetSplits",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "space_options_for",
]
