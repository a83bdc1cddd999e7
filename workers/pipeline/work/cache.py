"""What one worker process keeps between units of work: the datasets, supernets and subnet
evaluators it loaded last. A Ray worker that runs many evaluation tasks of one job loads the
supernet and the data once; the evaluator keeps its BN-recalibrated scores per genotype.

One :class:`WorkerCache` per process, made on first use (:func:`worker_cache`). Each kind of
entry is a small LRU (a worker serves one or two jobs at a time, and a supernet is big).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, TypeVar

from search_spaces import SearchSpace
from workers.data import DatasetSplits, load_dataset
from workers.pipeline.job import DataRef

K = TypeVar("K")
V = TypeVar("V")

CACHE_SIZE = 2


def _checkpoint_key(checkpoint: Path | str) -> tuple[str, float]:
    # The modification time is part of the key: a checkpoint rewritten in place (a retrained
    # job) is loaded again.
    p = Path(checkpoint)
    return str(p.resolve()), p.stat().st_mtime


class _Lru(OrderedDict[K, V]):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def hit(self, key: K) -> V | None:
        if key not in self:
            return None
        self.move_to_end(key)
        return self[key]

    def keep(self, key: K, value: V) -> V:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
        return value


class WorkerCache:
    """Loaded datasets, supernets (with their space) and subnet evaluators of this process.

    ``lock`` (reentrant) guards the entries and the shared supernets: code that changes a
    cached supernet's active arch (extracting, recalibrating, evaluating) holds it."""

    def __init__(self, size: int = CACHE_SIZE):
        self.lock = threading.RLock()
        self._data: _Lru[str, DatasetSplits] = _Lru(size)
        self._nets: _Lru[tuple[str, float], tuple[SearchSpace, Any]] = _Lru(size)
        self._evaluators: _Lru[tuple[str, float, str, int, str], Any] = _Lru(size)

    def data(self, ref: DataRef) -> DatasetSplits:
        with self.lock:
            key = ref.key()
            found = self._data.hit(key)
            if found is not None:
                return found
            return self._data.keep(key, load_dataset(ref.name, seed=ref.seed, **ref.options))

    def net(self, checkpoint: Path | str) -> tuple[SearchSpace, Any]:
        """The space and supernet of a checkpoint."""
        from workers.training import load_checkpoint

        with self.lock:
            key = _checkpoint_key(checkpoint)
            found = self._nets.hit(key)
            if found is not None:
                return found
            return self._nets.keep(key, load_checkpoint(Path(checkpoint)))

    def evaluator(
        self, checkpoint: Path | str, data: DataRef, seed: int, device: str = "cpu"
    ) -> Any:
        """The ``SubnetEvaluator`` of (checkpoint, data, seed) on ``device``
        (``workers.devices.resolve_device``): BN calibration images and its per-genotype scores
        are shared by every evaluation of that triple on that device."""
        from workers.devices import resolve_device
        from workers.evaluation import SubnetEvaluator

        with self.lock:
            dev = resolve_device(device)
            key = (*_checkpoint_key(checkpoint), data.key(), seed, str(dev))
            found = self._evaluators.hit(key)
            if found is not None:
                return found
            _, net = self.net(checkpoint)
            ev = SubnetEvaluator(net, self.data(data), seed=seed, device=dev)
            return self._evaluators.keep(key, ev)

    def clear(self) -> None:
        with self.lock:
            self._data.clear()
            self._nets.clear()
            self._evaluators.clear()


_CACHE: WorkerCache | None = None
_CREATE = threading.Lock()


def worker_cache() -> WorkerCache:
    """This process's cache (made on first use, so importing the pipeline loads nothing)."""
    global _CACHE
    with _CREATE:
        if _CACHE is None:
            _CACHE = WorkerCache()
        return _CACHE
