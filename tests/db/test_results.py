"""Metrics, candidates (idempotent upsert, measured overrides) and the Pareto front."""

from __future__ import annotations

from nas_service.db import Database
from nas_service.db.jobs import create_job
from nas_service.db.models import Job
from nas_service.db.queries import CandidateFilter, list_candidates, pareto_front
from nas_service.db.results import (
    CandidateIn,
    MetricRow,
    add_train_metrics,
    candidates_for_replay,
    last_metric_seq,
    list_train_metrics,
    set_pareto,
    upsert_candidates,
)
from nas_service.domain import CandidateSource
from tests.db.helpers import SPEC, make_jobs


def _cand(g: tuple[int, ...], acc: float, **kw: object) -> CandidateIn:
    return CandidateIn(arch={"depth": g[0]}, genotype=g, accuracy=acc, flops=100 * g[0], **kw)  # type: ignore[arg-type]


def test_metrics_are_idempotent_per_seq(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    rows = [
        MetricRow(seq=i, metrics={"loss": 1.0 / (i + 1)}, phase="full", epoch=i) for i in range(3)
    ]
    with db.transaction() as s:
        assert add_train_metrics(s, jid, rows) == 3
        assert add_train_metrics(s, jid, [*rows[1:], MetricRow(seq=3, metrics={"loss": 0.2})]) == 1
        assert last_metric_seq(s, jid) == 3
        after = list_train_metrics(s, jid, after=1)
        assert [m.seq for m in after] == [2, 3]
        assert after[0].metrics == {"loss": 1.0 / 3}


def test_upsert_never_duplicates_and_measured_wins(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    first = [_cand((1, 0), 0.5, predicted_accuracy=0.5), _cand((2, 1), 0.6)]
    with db.transaction() as s:
        ids = upsert_candidates(s, jid, first)
        # A replay of the same predictions changes nothing and returns the same ids.
        assert upsert_candidates(s, jid, first) == ids
        replay_changed = _cand((1, 0), 0.99)  # still "predicted": ignored
        assert upsert_candidates(s, jid, [replay_changed]) == [ids[0]]
        measured = _cand(
            (1, 0),
            0.55,
            latency_ms=3.5,
            source=CandidateSource.measured,
            predicted_accuracy=0.7,
            feasible=False,
        )
        assert upsert_candidates(s, jid, [measured]) == [ids[0]]
        # The same genotype on another device is another candidate.
        other_dev = upsert_candidates(s, jid, [_cand((1, 0), 0.5, device="phone")])
        assert other_dev[0] not in ids
    with db.transaction() as s:
        rows = candidates_for_replay(s, jid)
        assert [(r.genotype, r.device) for r in rows] == [
            ("1,0", "cpu"),
            ("2,1", "cpu"),
            ("1,0", "phone"),
        ]
        c = rows[0]
        assert (c.accuracy, c.latency_ms, c.source, c.feasible) == (0.55, 3.5, "measured", False)
        assert c.predicted_accuracy == 0.5  # the prediction is kept for comparison
        assert rows[1].accuracy == 0.6 and rows[1].source == "predicted"


def test_duplicates_inside_one_batch_collapse(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        ids = upsert_candidates(s, jid, [_cand((3, 3), 0.1), _cand((3, 3), 0.2)])
        assert ids[0] == ids[1]
        assert len(candidates_for_replay(s, jid)) == 1


def test_pareto_flags_version_and_history(db: Database) -> None:
    owner, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        ids = upsert_candidates(s, jid, [_cand((i, 0), 0.1 * i) for i in range(1, 6)])
        assert set_pareto(s, jid, ids[:2], hypervolume=0.3, evaluations=5) == 1
        assert set_pareto(s, jid, ids[1:4], hypervolume=0.4, evaluations=10) == 2
    with db.transaction() as s:
        found = pareto_front(s, jid, owner)
        assert found is not None
        job, front = found
        assert isinstance(job, Job)
        assert [c.id for c in front] == ids[1:4]
        assert job.pareto_version == 2
        assert [(h["evaluations"], h["hypervolume"]) for h in job.pareto_history] == [
            (5, 0.3),
            (10, 0.4),
        ]
        assert pareto_front(s, jid, owner + 1) is None


def test_list_candidates_filters_and_sorts(db: Database) -> None:
    _, (jid,) = make_jobs(db, 1)
    with db.transaction() as s:
        ids = upsert_candidates(
            s,
            jid,
            [
                _cand((1,), 0.3, latency_ms=2.0),
                _cand((2,), 0.9, latency_ms=None, feasible=False),
                _cand((3,), 0.6, latency_ms=1.0, source=CandidateSource.measured),
            ],
        )
        set_pareto(s, jid, [ids[2]])
        by_acc = list_candidates(s, jid, CandidateFilter(), sort="accuracy", order="desc")
        assert [c.id for c in by_acc] == [ids[1], ids[2], ids[0]]
        by_lat = list_candidates(s, jid, CandidateFilter(), sort="latency_ms", order="asc")
        assert [c.id for c in by_lat] == [ids[2], ids[0], ids[1]]  # NULL last
        # Keyset: after (0.3, ids[0]) in accuracy order comes 0.6, then 0.9.
        page = list_candidates(s, jid, CandidateFilter(), sort="accuracy", after=(0.3, ids[0]))
        assert [c.id for c in page] == [ids[2], ids[1]]

        # latency_ms desc, NULLs last: after (1.0, ids[2]) only the NULL row is left; after the
        # NULL row itself, nothing.
        def by_lat_desc(after: tuple[float | None, int] | None = None) -> list[int]:
            rows = list_candidates(
                s, jid, CandidateFilter(), sort="latency_ms", order="desc", after=after
            )
            return [c.id for c in rows]

        assert by_lat_desc() == [ids[0], ids[2], ids[1]]
        assert by_lat_desc((1.0, ids[2])) == [ids[1]]
        assert by_lat_desc((None, ids[1])) == []
        assert [c.id for c in list_candidates(s, jid, CandidateFilter(feasible=False))] == [ids[1]]
        assert [c.id for c in list_candidates(s, jid, CandidateFilter(source="measured"))] == [
            ids[2]
        ]
        assert [c.id for c in list_candidates(s, jid, CandidateFilter(pareto=True))] == [ids[2]]


def test_set_pareto_keeps_a_held_job_current(db: Database) -> None:
    owner, _ = make_jobs(db, 0)
    with db.transaction() as s:
        job = create_job(s, owner, SPEC, space_id="mlp")
        ids = upsert_candidates(s, job.id, [_cand((1,), 0.5)])
        assert set_pareto(s, job.id, ids, hypervolume=0.1) == 1
    # Still readable after the transaction, and current (no detached, expired attributes).
    assert job.pareto_version == 1 and job.pareto_history[0]["hypervolume"] == 0.1
