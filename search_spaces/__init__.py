"""Search spaces: torch-free specs (this package's top level) and torch supernets (``nn``)."""

from search_spaces.base import Arch, Dim, Genotype, InvalidArch, SearchSpace
from search_spaces.registry import UnknownSpace, get_space, list_spaces, register_space

__all__ = [
    "Arch",
    "Dim",
    "Genotype",
    "InvalidArch",
    "SearchSpace",
    "UnknownSpace",
    "get_space",
    "list_spaces",
    "register_space",
]
