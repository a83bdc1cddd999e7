"""The CLI's pure parts: argument parsing, job files, progress fractions and the front table."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from nas_service.cli import build_parser, dashboard_url, load_job_file
from nas_service.cli_view import StageBars, front_table, job_line, outcome_text, stage_fraction

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        ({"global_epoch": 3, "total_epochs": 12, "epoch": 1, "epochs": 2}, 0.25),
        ({"epoch": 1, "epochs": 4}, 0.25),
        ({"evaluated": 30, "budget": 40, "pareto": 5}, 0.75),
        ({"done": 1, "of": 2}, 0.5),
        ({"fraction": 0.4}, 0.4),
        ({"fraction": 40}, 0.4),
        ({"evaluated": 50, "budget": 40}, 1.0),
    ],
)
def test_stage_fraction_reads_the_pairs_the_runner_reports(
    progress: dict[str, float], expected: float
) -> None:
    assert stage_fraction(progress) == pytest.approx(expected)


@pytest.mark.parametrize(
    "progress", [None, {}, {"epoch": 0}, {"evaluated": 3, "budget": 0}, {"skipped": True}, 7]
)
def test_stage_fraction_is_none_when_nothing_is_known(progress: object) -> None:
    assert stage_fraction(progress) is None


def test_front_table_shows_objectives_and_never_turns_missing_into_zero() -> None:
    front = {
        "front": [
            {
                "id": 7,
                "arch_short": "d2-w64",
                "accuracy": 0.91,
                "flops": 12345,
                "source": "measured",
            },
            {
                "id": 9,
                "arch_short": "d1-w32",
                "accuracy": None,
                "predicted_accuracy": 0.8,
                "flops": 4000,
                "source": "predicted",
                "feasible": False,
            },
        ]
    }
    job = {"spec": {"search": {"objectives": [{"name": "accuracy"}, {"name": "flops"}]}}}
    text = front_table(front, job)
    header, _rule, first, second = text.splitlines()
    assert header.split()[:3] == ["id", "accuracy(val)", "flops"]
    assert first.split()[:3] == ["7", "0.91", "12,345"]
    assert "d2-w64" in first
    # The prediction stands in for the missing measurement; latency is unknown: a dash.
    assert second.split()[:3] == ["9", "0.8", "4,000"]
    assert "infeasible" in second
    assert " 0 " not in f" {second} "
    assert "-" in second.split()


def test_front_table_says_when_the_front_is_empty() -> None:
    assert "empty" in front_table({"front": []})


def test_stage_bars_open_one_bar_per_stage_and_complete_on_success() -> None:
    out = io.StringIO()
    bars = StageBars(out)
    bars.update({"status": "running", "stage": "training", "progress": {"epoch": 1, "epochs": 2}})
    bars.update(
        {"status": "running", "stage": "searching", "progress": {"evaluated": 1, "budget": 4}}
    )
    bars.update({"status": "succeeded", "stage": "searching", "progress": {}})
    bars.close()
    text = out.getvalue()
    assert "training" in text and "searching" in text
    assert "100%" in text


def test_job_line_and_dashboard_url() -> None:
    line = job_line({"id": "abc", "status": "running", "stage": "training", "name": "n"})
    assert line.split() == ["abc", "running", "training", "n"]
    assert dashboard_url("http://h:1/", "abc") == "http://h:1/#/jobs/abc"
    assert dashboard_url("http://h:1") == "http://h:1/"


@pytest.mark.parametrize("name", ["digits-quick.yaml", "mbv3-latency.yaml", "reuse-supernet.yaml"])
def test_example_job_files_parse_into_specs(name: str) -> None:
    spec = load_job_file(EXAMPLES / name)
    assert spec["dataset"] == {"name": "digits"}
    assert spec["devices"] == ["cpu"]
    assert {o["name"] for o in spec["search"]["objectives"]} >= {"accuracy"}


def test_load_job_file_rejects_non_mappings(tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SystemExit, match="mapping"):
        load_job_file(bad)
    with pytest.raises(SystemExit, match="cannot read"):
        load_job_file(tmp_path / "missing.yaml")


def test_parser_reads_url_and_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAS_URL", "http://example:9")
    monkeypatch.setenv("NAS_API_KEY", "k1")
    args = build_parser().parse_args(["download", "12", "--format", "onnx", "-o", "x.onnx"])
    assert (args.url, args.key, args.candidate, args.format, args.output) == (
        "http://example:9",
        "k1",
        "12",
        "onnx",
        "x.onnx",
    )
    args = build_parser().parse_args(["--url", "http://other:1", "serve", "--no-migrate"])
    assert args.url == "http://other:1" and args.migrate is False
    with pytest.raises(SystemExit):
        build_parser().parse_args(["download", "1", "--format", "pickle"])


def test_front_table_names_the_device_when_a_job_has_several() -> None:
    front = {
        "front": [
            {"id": 7, "device": "cpu-stable", "accuracy": 0.97, "latency_ms": 0.02},
            {"id": 2, "device": "cpu", "accuracy": 0.95, "latency_ms": 0.06},
            {"id": 9, "device": "cpu", "accuracy": 0.98, "latency_ms": 0.14},
        ]
    }
    lines = front_table(front).splitlines()
    assert lines[0].split()[:2] == ["id", "device"]
    assert [ln.split()[:2] for ln in lines[2:]] == [["2", "cpu"], ["9", "cpu"], ["7", "cpu-stable"]]
    single = front_table({"front": [{"id": 1, "device": "cpu", "accuracy": 0.9}]})
    assert "device" not in single.splitlines()[0]


def test_front_table_labels_each_accuracy_with_its_split() -> None:
    front = {
        "front": [
            {"id": 3, "accuracy": 0.95, "test_accuracy": 0.9125, "flops": 4736},
            {"id": 4, "accuracy": 0.97, "test_accuracy": None, "flops": 9000},
        ]
    }
    header, _rule, first, second = front_table(front).splitlines()
    assert header.split()[:4] == ["id", "accuracy(val)", "accuracy(test)", "flops"]
    assert first.split()[:4] == ["3", "0.95", "0.9125", "4,736"]
    assert second.split()[:4] == ["4", "0.97", "-", "9,000"]


def test_an_empty_front_of_a_finished_job_says_why_and_lists_the_closest() -> None:
    outcome = {
        "code": "no_feasible_subnet",
        "message": "no feasible subnet on cpu: the smallest network measures 7.21 ms, above "
        "the 5 ms bound (latency_ms<=5)",
        "devices": {
            "cpu": {
                "code": "no_feasible_subnet",
                "closest": [
                    {
                        "id": 12,
                        "arch_short": "r8-d22222",
                        "source": "measured",
                        "violation": 0.442,
                        "metrics": {"accuracy": 0.91, "latency_ms": 7.21, "flops": 109056},
                    }
                ],
            }
        },
    }
    text = front_table({"front": [], "outcome": outcome})
    lines = text.splitlines()
    assert lines[0] == outcome["message"]
    assert lines[1] == "closest candidates on cpu (by total bound violation):"
    assert "12" in lines[2] and "latency_ms=7.21" in lines[2] and "flops=109,056" in lines[2]
    assert "accuracy(val)=0.91" in lines[2] and "r8-d22222" in lines[2]
    assert outcome_text({"code": "front", "message": "Pareto front: 3 on cpu"}) is None
    # A job still running has no outcome: the plain empty-front line.
    assert front_table({"front": []}) == "(the front is empty so far)"
