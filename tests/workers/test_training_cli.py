"""The training command line: end to end on a tiny run, progress lines, a usable checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workers.training import load_checkpoint
from workers.training.cli import main


def test_cli_trains_and_writes_an_extractable_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--space", "mlp", "--dataset", "synthetic",
        "--data-option", "n=200", "--data-option", "shape=[12]", "--data-option", "classes=3",
        "--run-dir", str(tmp_path), "--epochs-scale", "0.25",
        "--sampler", "complexity-aware:walk",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "phases: [('full', 1), ('elastic-depth', 1), ('elastic-width', 2)]" in out
    assert "sampler complexity-aware/walk" in out
    assert "[1/4] full epoch 1/1" in out and "[4/4] elastic-width epoch 2/2" in out
    assert out.count("extract ok") == 2
    space, net = load_checkpoint(tmp_path / "final.pt")
    assert space.spec()["in_features"] == 12
    sub = net.extract(space.max_arch())
    assert sub(torch.zeros(2, 12)).shape == (2, 3)
    # A second call finds the run complete and resumes without training again.
    assert main(argv) == 0
    assert "[1/4]" not in capsys.readouterr().out


def test_cli_rejects_bad_option_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--space", "mlp", "--dataset", "digits", "--run-dir", "x", "--data-option", "n"])
    assert "expected KEY=VALUE" in capsys.readouterr().err
