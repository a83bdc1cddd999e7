"""The search command on a briefly trained MLP supernet: table, JSON report, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from search_spaces import get_space
from workers.data import load_dataset
from workers.search.cli import main
from workers.training import default_config, train_supernet


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    space = get_space("mlp", in_features=64, num_classes=10, widths=(16, 32, 64), depths=(1, 2))
    run_dir = tmp_path_factory.mktemp("cli-run")
    train_supernet(space, data, default_config(space, data).scaled(0.25), run_dir=run_dir, seed=0)
    return run_dir / "final.pt"


def test_search_prints_remeasured_front(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "report.json"
    argv = [
        "--checkpoint", str(checkpoint), "--dataset", "digits", "--algorithm", "evolution",
        "--budget", "12", "--batch", "6", "--objective", "accuracy:max",
        "--objective", "latency_ms:min", "--constraint", "params<=5000",
        "--cache-dir", str(tmp_path / "lut"), "--json", str(out_json),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "evolution search, 12 evaluations" in out
    header = out.splitlines()[1].split()
    assert header[:4] == ["#", "arch", "accuracy", "pred"]
    doc = json.loads(out_json.read_text())
    points = doc["report"]["points"]
    assert doc["evaluations"] == 12 and points
    assert doc["constraints"] == ["params<=5000"]
    for p in points:
        assert p["source"] == "measured"
        assert p["measured"]["latency_ms"] > 0 and p["predicted"]["latency_ms"] > 0
        assert p["measured"]["params"] <= 5000
        # accuracy is measured during the search already: re-measuring agrees exactly
        assert p["measured"]["accuracy"] == p["predicted"]["accuracy"]
    assert any(p["on_front"] for p in points)
    assert list((tmp_path / "lut").glob("latency-cpu-mlp-*.json"))  # table cached on disk


def test_bad_objective_and_constraint_are_named(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--checkpoint", str(checkpoint), "--dataset", "digits"]
    assert main([*base, "--objective", "speed:max"]) == 2
    assert "unknown metric 'speed'" in capsys.readouterr().err
    assert main([*base, "--constraint", "latency_ms<five"]) == 2
    assert "NAME<=NUMBER" in capsys.readouterr().err
    assert main(["--checkpoint", "/nonexistent/final.pt", "--dataset", "digits"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
