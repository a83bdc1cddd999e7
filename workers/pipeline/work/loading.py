"""Loading what a unit of work needs, through this process's :class:`WorkerCache`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces import SearchSpace
from workers.data import DatasetSplits
from workers.pipeline.job import DataRef
from workers.pipeline.work.cache import worker_cache


def load_data(ref: DataRef) -> DatasetSplits:
    """The dataset splits of ``ref`` (loaded once per process)."""
    return worker_cache().data(ref)


def load_net(checkpoint: Path | str) -> tuple[SearchSpace, Any]:
    """The space and trained supernet of a checkpoint (loaded once per process)."""
    return worker_cache().net(checkpoint)


def checkpoint_space(checkpoint: Path | str) -> SearchSpace:
    return load_net(checkpoint)[0]
