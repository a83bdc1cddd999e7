"""Checkpoints: atomic, weights-only files that rebuild the space, the supernet and the run.

Everything is stored as tensors, numbers, strings, lists and dicts so that every file loads
with ``torch.load(weights_only=True)``: no pickled modules or generator objects.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces import SearchSpace, get_space
from search_spaces.nn import Supernet

FINAL_NAME = "final.pt"
# p00-e0002.pt: after 2 epochs of phase 0; p00-e0002-s0005.pt: 5 steps into its third epoch.
_EPOCH_RE = re.compile(r"^p(\d+)-e(\d+)(?:-s(\d+))?\.pt$")
CHECKPOINT_DIR = "checkpoints"


def atomic_save(obj: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rng_states() -> dict[str, Any]:
    py = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps(_np_state_to_json(np.random.get_state())),
        "python": json.dumps([py[0], list(py[1]), py[2]]),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    np_state = json.loads(state["numpy"])
    np.random.set_state(
        (
            np_state[0],
            np.asarray(np_state[1], dtype=np.uint32),
            np_state[2],
            np_state[3],
            np_state[4],
        )
    )
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))


def _np_state_to_json(st: Any) -> list[Any]:
    return [st[0], [int(v) for v in st[1]], int(st[2]), int(st[3]), float(st[4])]


def epoch_checkpoint_path(run_dir: Path, phase: int, done: int) -> Path:
    """Checkpoint of the state after ``done`` epochs of ``phase``; ``p00-e0000`` is the state
    before any training, so a rollback always has a target. Names sort in training order."""
    return run_dir / CHECKPOINT_DIR / f"p{phase:02d}-e{done:04d}.pt"


def step_checkpoint_path(run_dir: Path, phase: int, done: int, step: int) -> Path:
    """Mid-epoch checkpoint: ``step`` steps into epoch ``done + 1`` of ``phase``."""
    return run_dir / CHECKPOINT_DIR / f"p{phase:02d}-e{done:04d}-s{step:04d}.pt"


def checkpoint_position(path: Path) -> tuple[int, int, int] | None:
    """``(phase, epochs done, steps into the next epoch)`` of a checkpoint file's name."""
    m = _EPOCH_RE.match(path.name)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Epoch and mid-epoch checkpoints in training order (the start checkpoint first)."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        pos = checkpoint_position(p)
        if pos is not None:
            found.append((pos, p))
    return [p for _, p in sorted(found)]


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Drop the mid-epoch checkpoints an epoch checkpoint supersedes, then keep the last
    ``keep`` (0: all)."""
    listed = list_checkpoints(run_dir)
    if listed:
        last = checkpoint_position(listed[-1])
        if last is not None and last[2] == 0:
            for p in listed[:-1]:
                pos = checkpoint_position(p)
                if pos is not None and pos[2] and pos[:2] < last[:2]:
                    p.unlink(missing_ok=True)
    if keep <= 0:
        return
    for p in list_checkpoints(run_dir)[:-keep]:
        p.unlink(missing_ok=True)


def save_final(space: SearchSpace, net: nn.Module, path: Path, extra: dict[str, Any]) -> None:
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    atomic_save(
        {
            "format": "supernet/v1",
            "space": json.dumps(space.spec()),
            "state_dict": state,
            "meta": json.dumps(extra),
        },
        path,
    )


def load_checkpoint(path: Path | str) -> tuple[SearchSpace, Supernet]:
    """Rebuild ``(space, supernet)`` from ``final.pt`` or any epoch checkpoint."""
    from search_spaces.nn import build_supernet

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ValueError(f"{p}: not a supernet checkpoint ({exc})") from exc
    if not isinstance(blob, dict) or "space" not in blob:
        raise ValueError(f"{p}: not a supernet checkpoint (no 'space' entry)")
    state = blob["state_dict"] if "state_dict" in blob else blob["model"]
    space = get_space(**json.loads(blob["space"]))
    net = build_supernet(space)
    net.load_state_dict(state)
    net.eval()
    return space, net
