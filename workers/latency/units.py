"""How a network of a space splits into timeable units (the rows of the lookup table).

Each space lays out its own units in its torch module (``latency_units`` and ``covering_archs``
beside its supernet; see ``search_spaces.nn``): a unit has a key (op type, input and output
shape, kernel, width, stride, ...) and builds a fresh module with exactly that configuration.
The parts every arch shares at a given input size (stem, head) are units too. The latency table
and regressor read them through the space registry, so a new space edits nothing here.
"""

from __future__ import annotations

from search_spaces.nn import Unit
from search_spaces.nn import covering_archs as covering_archs
from search_spaces.nn import latency_units as units_of

__all__ = ["Unit", "covering_archs", "units_of"]
