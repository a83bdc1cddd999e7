"""The units of work a job's stages run through their ``Engine``, by concept: loading data and
supernets (``loading``, over the process's ``cache``), training glue (``training``),
evaluation, latency and export. Each unit is a plain module-level function marked with
``workers.pipeline.engine.unit``, so it runs the same in this process or as a Ray task.

The most used helpers are re-exported here."""

from workers.pipeline.work.cache import WorkerCache, worker_cache
from workers.pipeline.work.evaluation import BN_BATCH, BN_IMAGES, bn_subset, evaluate
from workers.pipeline.work.loading import checkpoint_space, load_data, load_net
from workers.pipeline.work.training import train_config

__all__ = [
    "BN_BATCH",
    "BN_IMAGES",
    "WorkerCache",
    "bn_subset",
    "checkpoint_space",
    "evaluate",
    "load_data",
    "load_net",
    "train_config",
    "worker_cache",
]
