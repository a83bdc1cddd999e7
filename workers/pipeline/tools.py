"""The pipeline's calls into data, training, evaluation, latency and export, with per-process
caches (a Ray worker that runs many evaluation tasks loads the supernet and the data once).

Heavy modules are imported inside the functions so that importing the pipeline stays cheap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace
from workers.data import DatasetSplits, load_dataset, space_options_for
from workers.pipeline.job import DataRef, DeviceInfo
from workers.search import Objective, Searcher
from workers.search import make_searcher as _make_searcher

__all__ = ["space_options_for"]

_LOCK = threading.RLock()
_DATA: OrderedDict[str, DatasetSplits] = OrderedDict()
_NETS: OrderedDict[tuple[str, float], tuple[SearchSpace, Any]] = OrderedDict()
_EVALUATORS: OrderedDict[tuple[str, float, str, int], Any] = OrderedDict()
_CACHE_SIZE = 2

# Presets of the job spec: how much of the default schedule to run.
PRESET_SCALE = {"tiny": 0.25, "small": 0.5, "default": 1.0}
SAMPLER_POLICY = {"uniform-bins": "uniform", "neighbour-bins": "walk", "adaptive-bins": "adaptive"}


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> Any:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def load_data(ref: DataRef) -> DatasetSplits:
    with _LOCK:
        key = ref.key()
        if key in _DATA:
            _DATA.move_to_end(key)
            return _DATA[key]
        return _remember(_DATA, key, load_dataset(ref.name, seed=ref.seed, **ref.options))


def load_net(checkpoint: Path | str) -> tuple[SearchSpace, Any]:
    from workers.training import load_checkpoint

    p = Path(checkpoint)
    with _LOCK:
        key = (str(p.resolve()), p.stat().st_mtime)
        if key in _NETS:
            _NETS.move_to_end(key)
            return _NETS[key]
        return _remember(_NETS, key, load_checkpoint(p))


def checkpoint_space(checkpoint: Path | str) -> SearchSpace:
    return load_net(checkpoint)[0]


def short(space: SearchSpace, arch: Mapping[str, int]) -> str:
    fn = getattr(space, "short", None)
    return str(fn(arch)) if callable(fn) else ""


# ----- training ------------------------------------------------------------------------------
def train_config(space: SearchSpace, data: DatasetSplits, training: Mapping[str, Any]) -> Any:
    """The trainer's config from the job's training section (preset, scale, overrides)."""
    from workers.training import default_config

    cfg = default_config(space, data, sampler=str(training.get("sampler", "complexity-aware")))
    scale = PRESET_SCALE[str(training.get("preset", "tiny"))] * float(
        training.get("epochs_scale", 1.0)
    )
    cfg = cfg.scaled(scale)
    update: dict[str, Any] = {}
    if training.get("batch_size"):
        update["batch_size"] = int(training["batch_size"])
    if training.get("lr"):
        lr = float(training["lr"])
        top = max(p.lr for p in cfg.phases)
        update["phases"] = [p.model_copy(update={"lr": p.lr * lr / top}) for p in cfg.phases]
    policy = training.get("sampler_policy")
    if policy == "best-of-k":
        update["sampler"] = cfg.sampler.model_copy(update={"best_of": 3})
    elif policy in SAMPLER_POLICY:
        update["sampler"] = cfg.sampler.model_copy(update={"policy": SAMPLER_POLICY[policy]})
    return cfg.model_copy(update=update) if update else cfg


class _Callback:
    """Adapts the trainer's callback hooks to the engine's ``on_epoch`` / ``should_stop``."""

    def __init__(
        self,
        on_epoch: Callable[[dict[str, Any]], None],
        should_stop: Callable[[], bool],
        resumed_from: str | None,
    ):
        self._on_epoch = on_epoch
        self._should_stop = should_stop
        self._resumed_from = resumed_from

    def on_epoch(self, info: Mapping[str, Any], net: Any = None) -> None:
        row = {k: v for k, v in info.items() if k != "checkpoint"}
        if self._resumed_from is not None:
            # Only the first epoch after a resume carries it: where this attempt started.
            row["resumed_from"] = self._resumed_from
            self._resumed_from = None
        self._on_epoch(row)

    def should_stop(self) -> bool:
        return self._should_stop()


def train(
    space_spec: Mapping[str, Any],
    data: DataRef,
    training: Mapping[str, Any],
    run_dir: Path,
    seed: int,
    *,
    on_epoch: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
) -> Path:
    """Train (resuming from the checkpoints in ``run_dir``); returns ``run_dir/final.pt``."""
    from search_spaces import get_space
    from workers.training import train_supernet
    from workers.training.checkpoint import list_checkpoints

    space = get_space(**dict(space_spec))
    splits = load_data(data)
    cfg = train_config(space, splits, training)
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = list_checkpoints(run_dir)
    resumed_from = existing[-1].name if existing else None
    train_supernet(
        space,
        splits,
        cfg,
        run_dir=run_dir,
        callbacks=[_Callback(on_epoch, should_stop, resumed_from)],
        seed=seed,
        resume=True,
    )
    return run_dir / "final.pt"


def metric_row(info: Mapping[str, Any]) -> dict[str, Any]:
    """One ``train_metrics`` row from an epoch report: phase, epoch, step and the numbers."""
    numbers = {k: v for k, v in info.items() if k not in ("phase", "epoch", "step")}
    return {
        "phase": str(info.get("phase", "")),
        "epoch": int(info.get("epoch", 0)),
        "step": int(info.get("step", 0)),
        "metrics": _jsonable(numbers),
    }


def training_progress(info: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("phase", "phase_index", "epoch", "epochs", "global_epoch", "total_epochs", "step")
    return {k: _jsonable(info[k]) for k in keys if k in info}


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


# ----- evaluation and search -----------------------------------------------------------------
def evaluate(
    checkpoint: Path | str, data: DataRef, archs: Sequence[Mapping[str, int]], seed: int
) -> list[dict[str, float]]:
    from workers.evaluation import SubnetEvaluator

    _, net = load_net(checkpoint)
    p = Path(checkpoint)
    with _LOCK:
        key = (str(p.resolve()), p.stat().st_mtime, data.key(), seed)
        ev = _EVALUATORS.get(key)
        if ev is None:
            ev = _remember(_EVALUATORS, key, SubnetEvaluator(net, load_data(data), seed=seed))
        results = ev.evaluate([dict(a) for a in archs])
    return [{"accuracy": float(r["accuracy"]), "loss": float(r["loss"])} for r in results]


def make_searcher(
    algorithm: str,
    space: SearchSpace,
    objectives: Sequence[Objective],
    *,
    seed: int,
    batch_size: int,
    options: Mapping[str, Any],
    population: int | None,
) -> Searcher:
    opts: dict[str, Any] = {"batch_size": batch_size, **dict(options)}
    if population is not None and algorithm in ("evolution",):
        opts.setdefault("population", population)
    return _make_searcher(algorithm, space, objectives, seed=seed, **opts)


# ----- latency and export --------------------------------------------------------------------
def latency_table(device: DeviceInfo, space_spec: Mapping[str, Any], cache_dir: Path) -> Path:
    """Build (once per device and space) the per-operation latency table; returns its path."""
    from search_spaces import get_space
    from workers.predictors import LatencyTable, table_path

    space = get_space(**dict(space_spec))
    path = table_path(cache_dir, device.name, space)
    if not path.is_file():
        table = LatencyTable.build(
            space, device=device.torch_device, threads=device.threads, batch_size=device.batch_size
        )
        table.save(path)
    return path


def load_latency_table(
    path: Path | str, space: SearchSpace
) -> Callable[[Mapping[str, int]], float]:
    from workers.predictors import LatencyTable

    table = LatencyTable.load(Path(path))

    def predict(arch: Mapping[str, int]) -> float:
        return float(table.predict([dict(arch)])[0])

    return predict


def measure_latency(
    device: DeviceInfo, checkpoint: Path | str, archs: Sequence[Mapping[str, int]]
) -> list[float]:
    """Real latency (ms) of each extracted subnet on ``device``."""
    from workers.predictors import measure_latency as measure

    space, net = load_net(checkpoint)
    out = []
    for a in archs:
        sub = net.extract(dict(a))
        shape = (device.batch_size, *space.input_shape(a))
        out.append(float(measure(sub, shape, device=device.torch_device, threads=device.threads)))
    return out


def export(
    checkpoint: Path | str,
    data: DataRef,
    arch: Mapping[str, int],
    fmt: str,
    dest: Path,
    seed: int,
) -> tuple[Path, str, int]:
    """Export the BN-recalibrated subnet; returns (path, sha256, size in bytes)."""
    from workers.export import export_subnet

    _, net = load_net(checkpoint)
    res = export_subnet(net, dict(arch), load_data(data), fmt=fmt, dest=dest, seed=seed)
    return Path(res.path), str(res.sha256), int(res.size)
