"""``benchmarks/gpu_scale.py``: its no-GPU answer, its code paths on the CPU (``--smoke``), and
the preset it reads on a bare GPU machine, kept equal to the trainer's ``default_config``.

The module under test imports torch, numpy and the torch-only repo code alone; the preset
checks need the service's packages and skip without them (a bare GPU machine).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_scale

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_without_a_gpu_it_says_so_and_exits_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    monkeypatch.setenv("OUT", str(out_dir))
    report = gpu_scale.main(["--out", str(tmp_path / "r.json")])
    written = json.loads((tmp_path / "r.json").read_text())
    assert written == report and report["status"] == "skipped"
    assert "no CUDA device" in report["reason"] and "sections" not in report
    assert json.loads((out_dir / "r.json").read_text()) == report  # copied into $OUT


def _check_sections(report: dict, *, gpu: bool) -> None:
    sections = report["sections"]
    assert set(sections) == {"throughput", "elastic", "preset"}
    for size in ("224", "32"):
        entry = sections["throughput"][size]
        for precision in ("fp32", "bf16"):
            r = entry[precision]
            assert r["images_per_s"] > 0 and r["finite"] and r["subnets_per_step"] == 3.0
            assert ("peak_allocated_mib" in r) == gpu
        ratios = sections["elastic"][size]
        names = {f"{p}_{a}" for p in ("fp32", "bf16") for a in ("largest", "smallest")}
        assert set(ratios) == names
        assert all(r["ratio"] > 0 for r in ratios.values())
    assert sections["elastic"]["target_ratio_max"] == 1.10
    preset = sections["preset"]
    assert preset["steps_per_epoch"] == 50_000 // 128
    full = preset["phases"]["full"]
    assert full["fp32"]["subnets_per_step"] == 1.0  # the full-network phase: no sandwich
    assert full["steps"] == preset["steps_per_epoch"]
    total = sum(p["fp32"]["estimated_s"] for p in preset["phases"].values())
    assert math.isclose(preset["estimated_total_s"]["fp32"], total, rel_tol=1e-3, abs_tol=0.2)


def test_smoke_runs_every_section_on_the_cpu(tmp_path: Path) -> None:
    report = gpu_scale.main(["--smoke", "--out", str(tmp_path / "smoke.json")])
    assert report["status"].startswith("smoke")
    assert report["environment"]["device"] == "cpu"
    assert json.loads((tmp_path / "smoke.json").read_text()) == report
    _check_sections(report, gpu=False)


def test_the_carried_preset_is_the_trainers_default() -> None:
    pytest.importorskip("pydantic")
    from workers.training.config import PhaseConfig, restrict_for_phase

    stored = json.loads(gpu_scale.PRESET.read_text())
    current = gpu_scale.preset_from_config()
    assert stored == json.loads(json.dumps(current)), (
        "benchmarks/gpu/preset_cifar50k.json is stale: run "
        "python -m benchmarks.gpu_scale --write-preset"
    )
    preset, source = gpu_scale.load_preset()
    assert source.startswith("workers.training") and preset == current
    # The benchmark's phase views are the trainer's.
    space = gpu_scale.cifar_space()
    for ph in stored["phases"]:
        view = gpu_scale.phase_view(space, ph["unlock"])
        phase = PhaseConfig(name="p", epochs=1, lr=0.1, unlock=ph["unlock"])
        want = restrict_for_phase(space, phase)
        assert view.allowed == want.allowed, ph["name"]


@pytest.mark.gpu
@needs_gpu
def test_a_short_gpu_run_measures_every_section(tmp_path: Path) -> None:
    short = ["--steps", "3", "--preset-steps", "3", "--warmup", "1", "--repeats", "3"]
    report = gpu_scale.main([*short, "--out", str(tmp_path / "gpu.json")])
    assert report["status"] == "ok" and report["environment"]["device"].startswith("cuda")
    _check_sections(report, gpu=True)
