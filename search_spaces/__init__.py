"""Search spaces: torch-free specs (this package's top level) and torch supernets (``nn``)."""

from search_spaces.base import Arch, Dim, Genotype, InvalidArch, SearchSpace
from search_spaces.fitting import DataShape, SpaceFitError, fit_space, fitted_options
from search_spaces.registry import (
    UnknownSpace,
    get_space,
    list_spaces,
    register_space,
    space_entry,
)

__all__ = [
    "Arch",
    "DataShape",
    "Dim",
    "Genotype",
    "InvalidArch",
    "SearchSpace",
    "SpaceFitError",
    "UnknownSpace",
    "fit_space",
    "fitted_options",
    "get_space",
    "list_spaces",
    "register_space",
    "space_entry",
]
