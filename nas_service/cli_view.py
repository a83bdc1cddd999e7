"""Terminal rendering for the CLI: a progress bar per job stage and the Pareto front as a table."""

from __future__ import annotations

import math
from typing import Any, TextIO

from tqdm import tqdm

from nas_service.catalog import objectives
from nas_service.domain.spec import SearchSpec
from nas_service.domain.states import STAGES, TERMINAL

__all__ = ["STAGES"]
# (done, total) key pairs a stage's progress may use, in order of preference.
_PAIRS = (
    ("global_epoch", "total_epochs"),
    ("epoch", "epochs"),
    ("generation", "generations"),
    ("evaluated", "budget"),
    ("measured", "to_measure"),
    ("exported", "to_export"),
    ("done", "total"),
    ("done", "of"),
    ("step", "steps"),
    ("phase", "phases"),
)


def _objectives() -> list[str]:
    """The objectives of the catalog, in its order (the columns of a front table)."""
    return objectives.names()


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def stage_fraction(progress: Any) -> float | None:
    """How far the current stage is, in [0, 1], or None when the progress says nothing usable."""
    if not isinstance(progress, dict):
        return None
    for key in ("stage_fraction", "fraction"):
        v = _num(progress.get(key))
        if v is not None:
            return min(max(v / 100 if v > 1 else v, 0.0), 1.0)
    for done_key, total_key in _PAIRS:
        done, total = _num(progress.get(done_key)), _num(progress.get(total_key))
        if done is not None and total:
            return min(max(done / total, 0.0), 1.0)
    return None


def _detail(progress: Any) -> str:
    if not isinstance(progress, dict):
        return ""
    parts = [
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in progress.items()
        if k != "stage" and isinstance(v, int | float | str)
    ]
    return " ".join(parts)[:60]


class StageBars:
    """One tqdm bar per stage, opened when the job enters it and completed when it leaves."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.current: str | None = None
        self.bar: tqdm[Any] | None = None

    def update(self, job: dict[str, Any]) -> None:
        stage = job.get("stage")
        status = job.get("status")
        if isinstance(stage, str) and stage != self.current:
            self._finish(complete=True)
            self.current = stage
            self.bar = tqdm(
                total=100,
                desc=f"{stage:<10}",
                file=self.stream,
                leave=True,
                bar_format="{desc} {percentage:3.0f}%|{bar:30}| {elapsed} {postfix}",
            )
        if self.bar is not None:
            frac = stage_fraction(job.get("progress"))
            if frac is not None:
                self.bar.n = round(frac * 100)
            self.bar.set_postfix_str(_detail(job.get("progress")), refresh=False)
            self.bar.refresh()
        if status in TERMINAL:
            self._finish(complete=status == "succeeded")

    def write(self, text: str) -> None:
        tqdm.write(text, file=self.stream)

    def _finish(self, complete: bool) -> None:
        if self.bar is not None:
            if complete:
                self.bar.n = self.bar.total
            self.bar.refresh()
            self.bar.close()
        self.bar = None

    def close(self) -> None:
        self._finish(complete=False)


def _fmt(v: Any) -> str:
    n = _num(v)
    if n is None:
        return "-"
    if n.is_integer() and abs(n) >= 1000:
        return f"{int(n):,}"
    return f"{n:.4g}"


def front_points(front: dict[str, Any]) -> list[dict[str, Any]]:
    for key in ("front", "points", "candidates", "items"):
        value = front.get(key)
        if isinstance(value, list):
            return [p for p in value if isinstance(p, dict)]
    return []


def _objective_names(front: dict[str, Any], job: dict[str, Any] | None) -> list[str]:
    for source in (front.get("objectives"), ((job or {}).get("spec") or {}).get("search", {})):
        objs = source.get("objectives") if isinstance(source, dict) else source
        if isinstance(objs, list) and objs:
            names = [o.get("name") if isinstance(o, dict) else o for o in objs]
            return [str(n) for n in names if n]
    return [o.name for o in SearchSpec().objectives]  # the spec's default objectives


def _value(c: dict[str, Any], name: str) -> Any:
    v = c.get(name)
    if v is None and isinstance(c.get("objectives"), dict):
        v = c["objectives"].get(name)
    if v is None:
        v = c.get(f"predicted_{name}")
    return v


# Column titles that say which split an accuracy was measured on.
_TITLES = {"accuracy": "accuracy(val)", "test_accuracy": "accuracy(test)"}


def outcome_text(outcome: Any) -> str | None:
    """A finished job's outcome in lines: nothing for a found front, else why there is none
    and the closest candidates per device."""
    if not isinstance(outcome, dict) or outcome.get("code") != "no_feasible_subnet":
        return None
    lines = [str(outcome.get("message", "no feasible subnet"))]
    for device, part in (outcome.get("devices") or {}).items():
        closest = part.get("closest") if isinstance(part, dict) else None
        if not closest:
            continue
        lines.append(f"closest candidates on {device} (by total bound violation):")
        for c in closest:
            m = c.get("metrics") or {}
            figures = "  ".join(
                f"{_TITLES.get(k, k)}={_fmt(m[k])}"
                for k in (*_objectives(), "test_accuracy")
                if k in m
            )
            lines.append(
                f"  {c.get('id', '')}  violation {_fmt(c.get('violation'))}  {figures}  "
                f"{c.get('source', '')}  {str(c.get('arch_short', ''))[:48]}"
            )
    return "\n".join(lines)


def front_table(front: dict[str, Any], job: dict[str, Any] | None = None) -> str:
    points = front_points(front)
    if not points:
        why = outcome_text(front.get("outcome") or (job or {}).get("outcome"))
        return why or "(the front is empty so far)"
    names = _objective_names(front, job)
    cols = names + [n for n in _objectives() if n not in names]
    if any(c.get("test_accuracy") is not None for c in points):
        at = cols.index("accuracy") + 1 if "accuracy" in cols else len(cols)
        cols.insert(at, "test_accuracy")
    # A job with several devices has one front per device: say which point is whose.
    devices = sorted({str(c["device"]) for c in points if c.get("device") is not None})
    by_device = len(devices) > 1
    if by_device:
        points = sorted(points, key=lambda c: str(c.get("device", "")))
    header = [
        "id",
        *(["device"] if by_device else []),
        *(_TITLES.get(n, n) for n in cols),
        "source",
        "arch",
    ]
    rows = [
        [
            str(c.get("id", "")),
            *([str(c.get("device", ""))] if by_device else []),
            *[_fmt(_value(c, n)) for n in cols],
            str(c.get("source", "")) + ("" if c.get("feasible", True) else " (infeasible)"),
            str(c.get("arch_short", ""))[:48],
        ]
        for c in points
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    return "\n".join([head, "-" * len(head), *lines])


def job_line(job: dict[str, Any]) -> str:
    stage = job.get("stage") or "-"
    name = job.get("name") or ""
    return f"{job.get('id', '?')}  {job.get('status', '?'):<9}  {stage:<10}  {name}"
