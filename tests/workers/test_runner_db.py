"""The runner on the real store and a real local Ray (training as a Ray Tune trial): a cancel
reaches the trial and stops the job within seconds, leaving its checkpoints for a retry."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from nas_service.db import Database, results
from nas_service.db import jobs as jobs_repo
from nas_service.settings import Settings
from tests.workers.conftest_ray import (  # noqa: F401
    db,
    events,
    job_row,
    make_spec,
    owner,
    ray_local,
    settings,
    submit,
    wait_for,
)
from workers.dispatcher import Dispatcher, DispatcherConfig


def test_cancel_reaches_the_training_trial_within_seconds(
    ray_local: None,  # noqa: F811
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    long_training = {"preset": "default", "epochs_scale": 5.0, "batch_size": 32}
    jid = submit(db, owner(db), make_spec(training=long_training))
    d = Dispatcher(settings, config=DispatcherConfig(poll_s=0.1), worker_id="w-cancel")
    thread = threading.Thread(target=d.run)
    thread.start()
    try:

        def trained_an_epoch() -> bool:
            with db.transaction() as s:
                return bool(results.list_train_metrics(s, jid))

        wait_for(trained_an_epoch, 180, "the first training epoch")
        t0 = time.monotonic()
        with db.transaction() as s:
            assert jobs_repo.request_cancel(s, jid) is not None
        took = wait_for(lambda: job_row(db, jid).status == "cancelled", 60, "the cancel")
    finally:
        d.stop()
        thread.join(timeout=60)
    print(f"cancel honoured {took:.1f}s after the request (t0={t0:.0f})")
    assert took < 10.0
    row = job_row(db, jid)
    assert row.stage == "training" and row.error is None
    kinds = [e.kind for e in events(db, jid)]
    assert kinds.index("cancel_requested") < len(kinds) - 1
    assert (events(db, jid)[-1].to_status, d.outcomes[jid]) == ("cancelled", "cancelled")
    # The run directory keeps its epoch checkpoints (a retry resumes from them).
    run_dir = Path(row.run_dir)
    assert list((run_dir / "train" / "checkpoints").glob("p*-e*.pt"))
    assert not (run_dir / "train" / "final.pt").exists()
    with db.transaction() as s:
        assert results.candidates_for_replay(s, jid) == []
