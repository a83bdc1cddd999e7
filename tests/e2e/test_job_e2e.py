"""One job end to end over HTTP: the API served by uvicorn, the real dispatcher
(``python -m workers.runtime.dispatcher``) on a local Ray, a real PostgreSQL. Submitted with a key,
polled to ``succeeded``; the Pareto front is non-empty and every download format loads and
reproduces the supernet (ONNX within 1e-4). A non-Pareto candidate's export is made on request.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import torch

from nas_service.settings import Settings
from search_spaces.nn import build_static
from tests.workers.conftest_ray import TINY_SPEC, make_spec
from workers.bn import recalibrate_bn
from workers.pipeline import DataRef, work
from workers.training import load_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

# The shared tiny job, searched for accuracy against measured latency.
JOB = make_spec(
    name="e2e tiny",
    search={**TINY_SPEC["search"], "objectives": [{"name": "accuracy"}, {"name": "latency_ms"}]},
    seed=7,
)


def _reference(settings: Settings, job_id: str, arch: dict[str, int]) -> tuple[Any, Any]:
    """Raw validation samples with what the arch consumes of them, and the supernet's own output
    for ``arch``, BN recalibrated on the seeded training subset."""
    from search_spaces.nn.preprocess import Preprocess, to_raw

    final = settings.data_dir.resolve() / "runs" / job_id / "train" / "final.pt"
    _, net = load_checkpoint(final)
    net.set_active(arch)
    data = DataRef("digits", JOB["seed"])
    x_bn = work.bn_subset(data, JOB["seed"])
    recalibrate_bn(net, [net.prepare_input(x_bn[i : i + 200]) for i in range(0, len(x_bn), 200)])
    splits = work.load_data(data)
    x_val, _ = splits.tensors("val")
    spec = splits.info["preprocessing"]
    raw = to_raw(x_val[:32], spec)
    x = net.prepare_input(Preprocess(spec, x_val.shape[1:]).normalise(raw))
    with torch.no_grad():
        return (raw, x), net(x)


def _download(client: httpx.Client, cid: int, fmt: str, timeout: float = 120) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/candidates/{cid}/subnet", params={"format": fmt})
        if r.status_code == 200:
            body = r.content
            assert r.headers["etag"].strip('"') == hashlib.sha256(body).hexdigest()
            return body
        assert r.status_code == 202, r.text
        assert time.monotonic() < deadline, f"{fmt} export of {cid} not ready in {timeout}s"
        time.sleep(float(r.headers.get("retry-after", "1")))


def _check_subnet(fmt: str, body: bytes, arch: dict[str, int], xs: Any, ref: Any) -> None:
    """The downloads take the user's raw samples; the bare weights the normalised batch."""
    from search_spaces import get_space
    from search_spaces.nn import with_preprocessing

    raw, x = xs
    with torch.no_grad():
        if fmt == "weights":
            blob = torch.load(io.BytesIO(body), weights_only=True)
            assert blob["arch"] == arch
            net = build_static(blob["space"], blob["arch"])
            net.load_state_dict(blob["state_dict"])
            assert torch.allclose(net.eval()(x), ref, atol=1e-5)
            shape = get_space(**blob["space"]).input_shape(arch)
            wrapped = with_preprocessing(net, blob["metadata"]["preprocessing"], shape)
            assert torch.allclose(wrapped(raw), ref, atol=1e-5)
        elif fmt == "torchscript":
            ts = torch.jit.load(io.BytesIO(body)).eval()
            assert torch.allclose(ts(raw), ref, atol=1e-5)
        else:
            session = ort.InferenceSession(body, providers=["CPUExecutionProvider"])
            (out,) = session.run(None, {session.get_inputs()[0].name: raw.numpy()})
            assert float(np.abs(out - ref.numpy()).max()) <= 1e-4


def test_a_job_submitted_over_http_runs_to_a_downloadable_front(
    live_server: str,
    api_key: str,
    dispatcher: subprocess.Popen[bytes],
    e2e_settings: Settings,
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=f"{live_server}/api/v1", headers=headers, timeout=30) as client:
        t0 = time.monotonic()
        r = client.post("/jobs", json=JOB)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        assert r.headers["location"].endswith(f"/jobs/{job_id}")

        seen_stages: list[str] = []
        while True:
            job = client.get(f"/jobs/{job_id}").json()
            if job["stage"] and (not seen_stages or seen_stages[-1] != job["stage"]):
                seen_stages.append(job["stage"])
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() - t0 < 420, f"job still {job['status']} ({job['stage']})"
            time.sleep(0.5)
        job_seconds = time.monotonic() - t0
        print(f"\nend-to-end job: {job_seconds:.1f}s from submission to succeeded")
        assert job["status"] == "succeeded", job["error"]
        assert seen_stages[-1] == "exporting"

        pareto = client.get(f"/jobs/{job_id}/pareto").json()
        front = pareto["front"]
        assert pareto["final"] is True and front
        assert all(c["source"] == "measured" and c["is_pareto"] for c in front)
        assert all(c["predicted_latency_ms"] is not None for c in front)
        assert (
            pareto["hypervolume_history"] and pareto["hypervolume_history"][-1]["hypervolume"] > 0
        )

        everything = client.get(f"/jobs/{job_id}/candidates", params={"limit": 500}).json()
        genotypes = [c["genotype"] for c in everything["items"]]
        assert len(genotypes) == JOB["search"]["budget"] == len(set(genotypes))

        metrics = client.get(f"/jobs/{job_id}/metrics").json()
        assert metrics  # training curves were written while it ran

        for cand in front:
            x, ref = _reference(e2e_settings, job_id, cand["arch"])
            for fmt in ("weights", "torchscript", "onnx"):
                _check_subnet(fmt, _download(client, cand["id"], fmt), cand["arch"], x, ref)

        # A candidate outside the front is exported on request by the dispatcher.
        others = [c for c in everything["items"] if not c["is_pareto"]]
        assert others
        other = others[0]
        first = client.get(f"/candidates/{other['id']}/subnet", params={"format": "onnx"})
        assert first.status_code == 202
        x, ref = _reference(e2e_settings, job_id, other["arch"])
        _check_subnet("onnx", _download(client, other["id"], "onnx"), other["arch"], x, ref)
    assert Path(e2e_settings.data_dir).is_dir()
