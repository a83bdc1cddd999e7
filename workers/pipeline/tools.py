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
# BN recalibration of an exported subnet: images from the training split, batch size.
BN_IMAGES = 2000
BN_BATCH = 200

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
    callback = _Callback(on_epoch, should_stop, existing[-1].name if existing else None)
    if existing:
        # Report the epoch the resume starts from again: a crash between its checkpoint and
        # its report would otherwise leave a gap in the curves (sinks drop repeated epochs).
        last = _last_epoch_info(existing[-1])
        if last is not None:
            callback.on_epoch(last)
    train_supernet(
        space,
        splits,
        cfg,
        run_dir=run_dir,
        callbacks=[callback],
        seed=seed,
        resume=True,
    )
    return run_dir / "final.pt"


def _last_epoch_info(checkpoint: Path) -> dict[str, Any] | None:
    import json

    import torch

    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    history = json.loads(blob.get("history", "[]")) if isinstance(blob, dict) else []
    return dict(history[-1]) if history else None


def metric_row(info: Mapping[str, Any]) -> dict[str, Any]:
    """One ``train_metrics`` row from an epoch report: phase, epoch, step and the numbers."""
    numbers = {k: v for k, v in info.items() if k not in ("phase", "epoch", "step")}
    return {
        "phase": str(info.get("phase", "")),
        "epoch": int(info.get("epoch", 0)),
        "step": int(info.get("step", 0)),
        "metrics": jsonable(numbers),
    }


def training_progress(info: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("phase", "phase_index", "epoch", "epochs", "global_epoch", "total_epochs", "step")
    return {k: jsonable(info[k]) for k in keys if k in info}


def jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


# ----- evaluation and search -----------------------------------------------------------------
def bn_subset(data: DataRef, seed: int) -> Any:
    """The seeded subset of training images used for BN recalibration."""
    import torch

    x_train, _ = load_data(data).tensors("train")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(x_train.shape[0], generator=g)[:BN_IMAGES]
    return x_train[idx]


def evaluate(
    checkpoint: Path | str, data: DataRef, archs: Sequence[Mapping[str, int]], seed: int
) -> list[dict[str, float]]:
    """Validation accuracy and loss of each subnet, BN recalibrated first."""
    _, net = load_net(checkpoint)
    try:
        from workers.evaluation import SubnetEvaluator
    except ImportError:  # the batched evaluator is optional; score one subnet at a time
        from workers.training.steps import evaluate_archs

        x_val, y_val = load_data(data).tensors("val")
        with _LOCK:
            rs = evaluate_archs(
                net, [dict(a) for a in archs], bn_subset(data, seed), BN_BATCH, x_val, y_val
            )
        return [{"accuracy": float(r["accuracy"]), "loss": float(r["loss"])} for r in rs]
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
def _profile(device: DeviceInfo) -> Any:
    from workers.predictors import DeviceProfile

    return DeviceProfile(
        name=device.name,
        torch_device=device.torch_device,
        threads=device.threads,
        batch_size=device.batch_size,
        warmup=device.warmup,
        repeats=device.repeats,
        clock=device.clock,
        runtime=device.runtime,
        paired=device.paired,
    )


def _meter(device: DeviceInfo, space: SearchSpace, cache_dir: Path) -> Any:
    """The device's meter for ``space``. A paired device's speed reference is stored in
    ``cache_dir``, so the lookup table and the re-measured front share one millisecond scale."""
    from workers.predictors import LatencyMeter

    return LatencyMeter(space, _profile(device), cache_dir=cache_dir)


def latency_table(device: DeviceInfo, space_spec: Mapping[str, Any], cache_dir: Path) -> Path:
    """Build (once per device and space) the per-operation latency table, with its scale and
    constant fitted on a few whole networks measured on the device; returns the table's path."""
    import numpy as np

    from search_spaces import get_space
    from workers.predictors import LatencyTable
    from workers.predictors.latency_table import table_path

    space = get_space(**dict(space_spec))
    meter = _meter(device, space, cache_dir)
    path = table_path(cache_dir, space, meter.profile)
    if path.is_file():
        return path
    table = LatencyTable.build(space, meter.profile, meter=meter)
    rng = np.random.default_rng(0)
    archs = [space.min_arch(), space.max_arch(), *(space.sample(rng) for _ in range(3))]
    measured = [meter.time_arch(a).mean_ms for a in archs]
    table.fit_constant(archs, measured)
    return table.save(path)


def load_latency_table(
    path: Path | str, space: SearchSpace
) -> Callable[[Mapping[str, int]], float]:
    from workers.predictors import LatencyTable

    table = LatencyTable.load(Path(path))

    def predict(arch: Mapping[str, int]) -> float:
        return float(table.predict([dict(arch)])[0])

    return predict


def measure_latency(
    device: DeviceInfo,
    checkpoint: Path | str,
    archs: Sequence[Mapping[str, int]],
    cache_dir: Path | str,
) -> list[float]:
    """Real latency (ms, trimmed mean) of each extracted subnet on ``device``."""
    space, net = load_net(checkpoint)
    meter = _meter(device, space, Path(cache_dir))
    with _LOCK:
        subnets = [net.extract(dict(a)) for a in archs]
    return [float(meter.time_arch(a, sub).mean_ms) for a, sub in zip(archs, subnets, strict=True)]


def recalibrated_subnet(
    checkpoint: Path | str, data: DataRef, arch: Mapping[str, int], seed: int
) -> tuple[Any, Any]:
    """The static subnet of ``arch`` with BN statistics re-estimated on a seeded subset of the
    training split (what users download), and a validation batch shaped for it."""

    from workers.bn import recalibrate_bn

    space, net = load_net(checkpoint)
    x_bn = bn_subset(data, seed)
    x_val, _ = load_data(data).tensors("val")
    canon = space.canonical(arch)
    with _LOCK:
        net.set_active(canon)
        batches = [net.prepare_input(x_bn[i : i + BN_BATCH]) for i in range(0, len(x_bn), BN_BATCH)]
        example = net.prepare_input(x_val[:4])
        sub = net.extract(canon)
    recalibrate_bn(sub, batches)
    return sub.eval(), example


def export(
    checkpoint: Path | str,
    data: DataRef,
    arch: Mapping[str, int],
    fmt: str,
    dest: Path,
    seed: int,
) -> tuple[Path, str, int]:
    """Export the BN-recalibrated subnet to ``dest`` (written to a temp file, checked against
    the subnet's own output, renamed); returns (path, sha256, size in bytes)."""
    from workers.export import EXTENSIONS, export_subnet

    space, _ = load_net(checkpoint)
    sub, example = recalibrated_subnet(checkpoint, data, arch, seed)
    stem = dest.name.split(".")[0]
    res = export_subnet(sub, space, arch, fmt, dest.parent, example, name=stem)
    assert res.path.name == f"{stem}{EXTENSIONS[fmt]}"
    return Path(res.path), str(res.sha256), int(res.size)
