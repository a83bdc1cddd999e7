"""Job commands of the ``nas`` console script against the real server: submit, list, show,
candidates (sorted, filtered), events, the front, cancel, retry; global options anywhere;
``--json`` and ``-o yaml`` on every read command."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml

from nas_service.db.results import CandidateIn, set_pareto, upsert_candidates
from nas_service.domain import CandidateSource
from tests.cli.conftest import Nas


def seed_candidates(nas: Nas, job_id: str, n: int = 6, pareto: bool = False) -> list[int]:
    """What a runner writes: ``n`` candidates (accuracy rising with i, every third infeasible,
    every other measured); with ``pareto`` all of them are the front."""
    rows = [
        CandidateIn(
            arch={"depth": 1 + i % 3, "i": i},
            genotype=[i, i % 3],
            arch_short=f"d{1 + i % 3}-n{i}",
            accuracy=0.5 + i / (2 * n),
            test_accuracy=0.45 + i / (2 * n),
            params=1000 * (n - i),
            flops=5000 * (n - i),
            predicted_accuracy=0.5 + i / (2 * n),
            source=CandidateSource.measured if i % 2 else CandidateSource.predicted,
            feasible=i % 3 != 0,
        )
        for i in range(n)
    ]
    with nas.db.transaction() as s:
        ids = upsert_candidates(s, uuid.UUID(job_id), rows)
        if pareto:
            set_pareto(s, uuid.UUID(job_id), ids)
    return ids


def test_submit_show_and_list_in_every_format(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path, "show me")
    uuid.UUID(job_id)  # stdout is the id alone
    shown = nas.json("jobs", "show", job_id)
    assert (shown["id"], shown["name"], shown["status"]) == (job_id, "show me", "queued")
    assert shown["spec"]["search"]["budget"] == 10
    text = nas.ok("jobs", "show", job_id).stdout
    assert f"id:            {job_id}" in text
    assert "status:        queued" in text
    assert "objectives:    accuracy max, params min" in text
    assert f"dashboard:     {nas.url}/#/jobs/{job_id}" in text
    assert yaml.safe_load(nas.ok("jobs", "show", job_id, "-o", "yaml").stdout) == shown

    other = nas.submit(tmp_path, "second")
    listed = nas.json("jobs")
    assert [j["id"] for j in listed] == [other, job_id]  # newest first, this key's only
    assert set(listed[0]) >= {"id", "name", "status", "stage", "progress", "created_at", "spec"}
    table = nas.ok("jobs", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "STATUS", "STAGE", "PROGRESS", "CREATED", "NAME"]
    assert [row.split()[0] for row in table[1:]] == [other, job_id]
    assert [j["id"] for j in nas.json("jobs", "list", "--limit", "1")] == [other]

    # cancel and retry print the job; status filters
    cancelled = nas.json("cancel", other)
    assert (cancelled["id"], cancelled["status"]) == (other, "cancelled")
    assert [j["id"] for j in nas.json("jobs", "--status", "cancelled")] == [other]
    assert [j["id"] for j in nas.json("jobs", "list", "--status", "queued")] == [job_id]
    both = nas.json("jobs", "list", "--status", "queued", "--status", "cancelled")
    assert {j["id"] for j in both} == {job_id, other}
    assert nas.json("jobs", "retry", other)["status"] == "queued"


def test_global_options_go_anywhere(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    key, url = nas.env["NAS_API_KEY"], nas.url
    bare = {"NAS_URL": None, "NAS_API_KEY": None}
    lines = [
        ["--url", url, "--key", key, "--json", "jobs", "show", job_id],
        ["jobs", "--json", "--url", url, "show", job_id, "--key", key],
        ["jobs", "show", job_id, "--key", key, "--url", url, "-o", "json"],
        ["--key", key, "jobs", "show", "--url", url, job_id, "--output", "json"],
    ]
    for argv in lines:
        done = nas.run(*argv, env=bare)
        assert done.returncode == 0, (argv, done.stderr)
        assert json.loads(done.stdout)["id"] == job_id


def test_candidates_sort_and_filter(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    ids = seed_candidates(nas, job_id, n=6)
    rows = nas.json("jobs", "candidates", job_id)
    assert [c["id"] for c in rows] == ids
    assert set(rows[0]) >= {"id", "accuracy", "test_accuracy", "params", "source", "feasible"}

    by_acc = nas.json("jobs", "candidates", job_id, "--sort", "accuracy", "--desc")
    assert [c["id"] for c in by_acc] == ids[::-1]
    by_params = nas.json("jobs", "candidates", job_id, "--sort", "params", "--order", "asc")
    assert [c["id"] for c in by_params] == ids[::-1]  # params fall as i rises
    top2 = nas.json("jobs", "candidates", job_id, "--sort", "accuracy", "--desc", "--limit", "2")
    assert [c["id"] for c in top2] == ids[:-3:-1]

    feasible = nas.json("jobs", "candidates", job_id, "--feasible")
    assert [c["id"] for c in feasible] == [ids[i] for i in range(6) if i % 3]
    infeasible = nas.json("jobs", "candidates", job_id, "--no-feasible")
    assert [c["id"] for c in infeasible] == [ids[0], ids[3]]
    measured = nas.json("jobs", "candidates", job_id, "--source", "measured", "--feasible")
    assert [c["id"] for c in measured] == [ids[1], ids[5]]
    assert nas.json("jobs", "candidates", job_id, "--pareto") == []
    assert nas.json("jobs", "candidates", job_id, "--device", "cpu-stable") == []

    table = nas.ok("jobs", "candidates", job_id, "--sort", "accuracy", "--desc").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "DEVICE", "ACCURACY(VAL)", "ACCURACY(TEST)"]
    assert table[1].split()[:3] == [str(ids[-1]), "cpu", "0.9167"]


def test_candidates_read_every_page(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    ids = seed_candidates(nas, job_id, n=450)  # more than one page of the client (200)
    rows = nas.json("jobs", "candidates", job_id, "--limit", "0")
    assert [c["id"] for c in rows] == ids
    assert len(nas.json("jobs", "candidates", job_id)) == 100  # the default limit


def test_the_front_in_every_format(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    ids = seed_candidates(nas, job_id, n=4)
    with nas.db.transaction() as s:
        set_pareto(s, uuid.UUID(job_id), ids[2:])
    front = nas.json("pareto", job_id)
    assert front["job_id"] == job_id
    assert [c["id"] for c in front["front"]] == ids[2:]
    assert yaml.safe_load(nas.ok("jobs", "pareto", job_id, "-o", "yaml").stdout) == front
    table = nas.ok("pareto", job_id).stdout.splitlines()
    assert table[0].split()[:3] == ["id", "accuracy(val)", "accuracy(test)"]
    assert [r.split()[0] for r in table[2:]] == [str(i) for i in ids[2:]]
    pareto = nas.json("jobs", "candidates", job_id, "--pareto")
    assert [c["id"] for c in pareto] == ids[2:]


def test_events_of_a_job(nas: Nas, tmp_path: Path) -> None:
    job_id = nas.submit(tmp_path)
    nas.ok("cancel", job_id)
    events = nas.json("jobs", "events", job_id)
    assert [e["to_status"] for e in events] == ["queued", "cancelled"]
    assert set(events[0]) >= {"id", "ts", "kind", "from_status", "to_status", "message"}
    table = nas.ok("jobs", "events", job_id).stdout.splitlines()
    assert table[0].split() == ["ID", "TIME", "KIND", "STATUS", "MESSAGE"]
    assert "queued -> cancelled" in table[2]
    assert len(nas.json("jobs", "events", job_id, "--limit", "1")) == 1
