"""``vit`` jobs end to end: on digits through the job pipeline (in-memory sink, local engine),
and on an uploaded image folder through the real runner on the real store. Each ends with a
non-empty measured front whose three downloads load and reproduce the supernet; a network
without batch norm is scored as it stands (no recalibration)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from nas_service.db import Database, results
from nas_service.db import artifacts as arts
from nas_service.db import datasets as dataset_repo
from nas_service.db import jobs as jobs_repo
from nas_service.domain import ArtifactKind, ArtifactStatus, JobSpec
from nas_service.services.jobs import validate_spec
from nas_service.settings import Settings
from search_spaces.nn import build_static, load_subnet
from search_spaces.nn.preprocess import Preprocess, to_raw
from tests.workers.conftest_ray import db, owner, settings, submit  # noqa: F401
from workers.bn import has_batch_norm, recalibrate_bn
from workers.evaluation import SubnetEvaluator
from workers.pipeline import (
    DataRef,
    DeviceInfo,
    JobInputs,
    LocalEngine,
    MemorySink,
    run_pipeline,
    work,
)
from workers.runtime.runner import run_job
from workers.training import load_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SEARCH: dict[str, Any] = {
    "algorithm": "evolution",
    "budget": 12,
    "population": 6,
    "objectives": [{"name": "accuracy"}, {"name": "latency_ms"}],
}
DIGITS_SPEC: dict[str, Any] = {
    "space": {"id": "vit", "options": {"embed_dims": [16, 32], "depths": [1, 2]}},
    "dataset": {"name": "digits"},
    "training": {"preset": "tiny", "epochs_scale": 0.5, "batch_size": 128},
    "search": SEARCH,
    "devices": ["cpu"],
    "seed": 2,
}


def _outputs(checkpoint: str | Path, data: DataRef, arch: dict[str, int]) -> tuple[Any, Any, Any]:
    """Raw validation samples (as the user's file holds them), what the arch consumes of them,
    and the supernet's eval output (no batch norm, so nothing to recalibrate)."""
    _, net = load_checkpoint(checkpoint)
    assert not has_batch_norm(net)
    net.set_active(arch)
    splits = work.load_data(data)
    x_val, _ = splits.tensors("val")
    spec = splits.info["preprocessing"]
    raw = to_raw(x_val[:16], spec)
    x = net.prepare_input(Preprocess(spec, x_val.shape[1:]).normalise(raw))
    with torch.no_grad():
        return raw, x, net.eval()(x)


def _check_download(
    kind: str, path: Path, arch: dict[str, int], raw: Any, x: Any, ref: Any
) -> None:
    """The bare static subnet takes the prepared batch; the downloads take the raw one."""
    with torch.no_grad():
        if kind == "subnet_weights":
            blob = torch.load(path, weights_only=True)
            assert blob["arch"] == arch and blob["space"]["id"] == "vit"
            net = build_static(blob["space"], blob["arch"])
            net.load_state_dict(blob["state_dict"])
            assert float((net.eval()(x) - ref).abs().max()) <= 1e-5
            assert float((load_subnet(str(path))(raw) - ref).abs().max()) <= 1e-5
        elif kind == "subnet_torchscript":
            out = torch.jit.load(str(path)).eval()(raw)
            assert float((out - ref).abs().max()) <= 1e-5
        else:
            assert kind == "subnet_onnx"
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (out_np,) = session.run(None, {session.get_inputs()[0].name: raw.numpy()})
            assert np.abs(out_np - ref.numpy()).max() <= 1e-4


def test_a_vit_job_on_digits_ends_with_a_front_whose_downloads_match(tmp_path: Path) -> None:
    js = JobSpec.model_validate(DIGITS_SPEC)
    inputs = JobInputs(
        job_id="vit-digits",
        spec=js,
        data=DataRef("digits", js.seed),
        run_dir=tmp_path / "run",
        devices=(DeviceInfo("cpu"),),
        cache_dir=tmp_path / "cache",
    )
    sink = MemorySink()
    result = run_pipeline(inputs, sink, LocalEngine())
    # The space fitted to 8x8 digits (hybrid stem, patch 2), the user's widths on top.
    space = work.checkpoint_space(result.checkpoint)
    assert space.id == "vit" and space.options["patch_size"] == 2
    assert space.options["embed_dims"] == [16, 32] and space.options["stem_channels"] == 16
    phases = [m["phase"] for m in sink.metrics]
    assert phases[0] == "full" and {"elastic-depth", "elastic-expand", "elastic-width"} <= set(
        phases
    )
    rows = sink.stored_candidates("cpu")
    assert len(rows) == js.search.budget and len({r.genotype for r in rows}) == len(rows)
    for r in rows:
        assert r.metrics["flops"] == space.flops(r.arch)
        assert 0.0 <= r.metrics["accuracy"] <= 1.0 and r.metrics["latency_ms"] > 0
    front = set(sink.pareto["cpu"])
    assert front and {g for g, _ in sink.artifacts} == front
    assert result.artifacts == 3 * len(front)
    by_genotype = {r.genotype: r for r in rows}
    for (genotype, kind), art in sink.artifacts.items():
        arch = by_genotype[genotype].arch
        raw, x, ref = _outputs(result.checkpoint, inputs.data, arch)
        _check_download(kind, Path(art.uri), arch, raw, x, ref)

    # BN-free scoring: the evaluator's accuracy is the plain eval-mode accuracy of the subnet.
    _, net = load_checkpoint(result.checkpoint)
    data = work.load_data(inputs.data)
    arch = by_genotype[sorted(front)[0]].arch
    (score,) = SubnetEvaluator(net, data, seed=js.seed).evaluate([arch])
    net.set_active(arch)
    x_val, y_val = data.tensors("val")
    with torch.no_grad():
        correct = int((net.eval()(net.prepare_input(x_val)).argmax(1) == y_val).sum())
    assert score["accuracy"] == correct / len(y_val)
    assert recalibrate_bn(net, iter(())) == 0  # nothing to re-estimate, nothing consumed


def _image_zip(path: Path, per_class: int = 40) -> None:
    """Three classes of 16x16 RGB images: horizontal stripes, vertical stripes, a blob."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    patterns = {
        "horizontal": (yy // 2) % 2,
        "vertical": (xx // 2) % 2,
        "blob": ((yy - 8) ** 2 + (xx - 8) ** 2 < 25).astype(int),
    }
    with zipfile.ZipFile(path, "w") as zf:
        for name, pattern in patterns.items():
            for i in range(per_class):
                img = 160 * pattern[..., None] + rng.integers(0, 90, size=(16, 16, 3))
                buf = io.BytesIO()
                Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB").save(buf, format="PNG")
                zf.writestr(f"{name}/{i}.png", buf.getvalue())


@pytest.mark.slow
def test_a_vit_job_on_an_uploaded_image_folder_runs_through_the_runner(
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    key = owner(db)
    archive = tmp_path / "patterns.zip"
    _image_zip(archive)
    with db.transaction() as s:
        art = arts.create_artifact(
            s, key, ArtifactKind.dataset, status=ArtifactStatus.ready, uri=str(archive)
        )
        info = {"num_classes": 3, "classes": ["blob", "horizontal", "vertical"]}
        ds = dataset_repo.create_dataset(s, key, "patterns", "image-folder", art.id, info)
    spec = {
        **DIGITS_SPEC,
        "space": {"id": "vit", "options": {}},
        "dataset": {"id": str(ds.id), "options": {"size": 16}},
        "search": {**SEARCH, "objectives": [{"name": "accuracy"}, {"name": "flops"}]},
    }
    js = JobSpec.model_validate(spec)
    with db.transaction() as s:
        # The API's check: the space it will build, fitted to 16x16 RGB images of 3 classes.
        space = validate_spec(s, settings, key, js)
    assert space.id == "vit" and space.options["in_channels"] == 3
    assert (space.options["num_classes"], space.options["patch_size"]) == (3, 4)
    jid = submit(db, key, js.model_dump(mode="json", exclude_none=True))
    with db.transaction() as s:
        claimed = jobs_repo.claim_next_job(s, "w-vit")
        assert claimed is not None and claimed.id == jid
    assert run_job(jid, settings, "w-vit", engine=LocalEngine()) == "succeeded"
    with db.transaction() as s:
        cands = results.candidates_for_replay(s, jid)
        front = [c for c in cands if c.is_pareto]
        stored = arts.job_artifacts(s, jid)
        rows = [(c.id, dict(c.arch)) for c in front]
        files = [(a.candidate_id, a.kind, a.status, a.uri) for a in stored]
    assert len(cands) == js.search.budget and front
    checkpoint = settings.data_dir.resolve() / "runs" / str(jid) / "train" / "final.pt"
    data = DataRef("image-folder", js.seed, {"size": 16, "root": str(archive)})
    arch_of = dict(rows)
    downloads = [(cid, kind, uri) for cid, kind, status, uri in files if cid in arch_of]
    assert {cid for cid, _, _ in downloads} == set(arch_of)
    assert len(downloads) == 3 * len(front)
    for cid, kind, uri in downloads:
        assert uri is not None
        raw, x, ref = _outputs(checkpoint, data, arch_of[cid])
        _check_download(kind, Path(uri), arch_of[cid], raw, x, ref)


def test_the_example_job_file_is_a_valid_vit_job(
    db: Database,  # noqa: F811
    settings: Settings,  # noqa: F811
) -> None:
    from nas_service.cli_jobs import load_job_file

    body = load_job_file(Path(__file__).resolve().parents[2] / "examples" / "vit-digits.yaml")
    js = JobSpec.model_validate(body)
    with db.transaction() as s:
        space = validate_spec(s, settings, owner(db), js)
    assert space.id == "vit" and space.options["patch_size"] == 2
    assert space.options["resolutions"] == [8] and space.options["pool"] == "mean"
