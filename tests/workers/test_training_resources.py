"""A job's training ``resources`` at submit: checked against the capacity a dispatcher
recorded for its cluster (``nas_service.services.capacity``), else against the settings."""

from __future__ import annotations

from pathlib import Path

from nas_service.domain import JobSpec
from nas_service.services.capacity import resource_errors, workers_that_fit, write_capacity
from nas_service.settings import Settings
from tests.workers.conftest_ray import TINY_SPEC
from workers.runtime.dispatcher import ray_auth_env


def _spec(**resources: object) -> JobSpec:
    return JobSpec.model_validate({**TINY_SPEC, "resources": resources})


def test_resources_are_checked_against_the_recorded_cluster(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    # No report: the settings' limits (no GPU job until a cluster with GPUs reports).
    assert resource_errors(settings, _spec(workers=2)) == []
    errs = resource_errors(settings, _spec(workers=1, gpus_per_worker=1))
    assert [e.field for e in errs] == ["resources.gpus_per_worker"]
    assert [e.field for e in resource_errors(settings, _spec(workers=16))] == ["resources.workers"]
    write_capacity(settings, [{"CPU": 4, "GPU": 1}, {"CPU": 2, "GPU": 0}])
    assert workers_that_fit([{"CPU": 4, "GPU": 1}, {"CPU": 2}], 2, 0) == 3
    assert resource_errors(settings, _spec(workers=2, cpus_per_worker=2)) == []
    assert resource_errors(settings, _spec(workers=1, gpus_per_worker=1)) == []
    errs = resource_errors(settings, _spec(workers=2, gpus_per_worker=1))
    assert len(errs) == 1 and "holds 1 worker(s)" in errs[0].reason
    errs = resource_errors(settings, _spec(workers=4, cpus_per_worker=2))
    assert errs[0].field == "resources.workers"
    # The global batch must split evenly over the workers.
    odd = JobSpec.model_validate(
        {**TINY_SPEC, "resources": {"workers": 3}, "training": {"batch_size": 256}}
    )
    assert any("must divide" in e.reason for e in resource_errors(settings, odd))


def test_the_dispatcher_turns_token_mode_on_when_the_cluster_has_a_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    with_path = Settings(data_dir=tmp_path, ray_auth_token_path=token)
    assert ray_auth_env(with_path, {"HOME": str(tmp_path)}) == {
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_AUTH_MODE": "token",
    }
    plain = Settings(data_dir=tmp_path)
    assert ray_auth_env(plain, {"HOME": str(tmp_path), "RAY_AUTH_TOKEN": "x"}) == {
        "RAY_AUTH_MODE": "token"
    }
    # An explicit mode is the user's to keep.
    assert ray_auth_env(plain, {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "x"}) == {}
