"""The catalog read by every layer: GET /api/v1/catalog lists each kind's entries, validation
reads the same entries, and the API validates the very space the runner builds (one fitting
rule). A throwaway entry of each kind, registered here only, shows up in both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

from nas_service.catalog import CATALOG, Entry, register
from nas_service.catalog.datasets import (
    Arrays,
    DatasetError,
    RawLayout,
    SplitOptions,
    dataset_entry,
)
from search_spaces import DataShape, fit_space, get_space, list_spaces
from search_spaces.mlp import MLPSpace
from search_spaces.registry import register_space, unregister_space
from tests.api.client import Api
from tests.api.specs import spec
from tests.api.uploads import npz_bytes


def _errors(r: Any) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {e["field"]: e["reason"] for e in r.json()["errors"]}


def test_the_catalog_lists_every_kind_with_options_schemas(api: Api) -> None:
    body = api.get("/api/v1/catalog").json()["kinds"]
    names = {k: [e["name"] for e in v["entries"]] for k, v in body.items()}
    assert names["space"] == sorted(list_spaces()) and {"mbv3", "mlp"} <= set(names["space"])
    assert names["searcher"] == ["random", "evolution", "bayesian", "linas"]
    assert names["dataset"] == [
        "digits",
        "synthetic",
        "npz",
        "image-folder",
        "cifar10",
        "cifar",
    ]
    assert names["objective"] == ["accuracy", "latency_ms", "flops", "params"]
    assert names["export"] == ["weights", "torchscript", "onnx"]
    assert set(body) == {
        "space",
        "searcher",
        "dataset",
        "objective",
        "export",
        "device_runtime",
        "training_preset",
        "sampler",
    }
    evo = next(e for e in body["searcher"]["entries"] if e["name"] == "evolution")
    assert "mutation_rate" in evo["options_schema"]["properties"]
    acc = next(e for e in body["objective"]["entries"] if e["name"] == "accuracy")
    assert (acc["direction"], acc["label"]) == ("max", "accuracy (val)")
    # The OpenAPI enums are the catalog's names.
    schema = api.get("/openapi.json").json()["components"]["schemas"]
    assert schema["SearchSpec"]["properties"]["algorithm"]["enum"] == names["searcher"]
    assert api.get("/api/v1/catalog", headers={"Authorization": ""}).status_code == 401


def test_search_options_are_checked_at_submission(api: Api) -> None:
    bad = spec(**{"search.options": {"mutation_rate": -1, "crossover_eta": 15}})
    errors = _errors(api.post("/api/v1/jobs", json=bad))
    assert "greater than 0" in errors["search.options.mutation_rate"]
    assert "unknown option for evolution" in errors["search.options.crossover_eta"]
    good = spec(**{"search.options": {"mutation_rate": 1.5, "mating_radius": 4}})
    assert api.post("/api/v1/jobs", json=good).status_code == 201


# ----- one fitting rule: the three cases a user met -----------------------------------------
def test_empty_space_options_fit_an_uploaded_table(api: Api) -> None:
    """An uploaded table of 30 features: ``space.options: {}`` is fitted to it (it was refused
    as 'in_features=64 but the dataset has 30')."""
    rng = np.random.default_rng(0)
    table = npz_bytes(n=40, classes=2, x=rng.normal(size=(40, 30)).astype(np.float32))
    ds = api.post("/api/v1/datasets", files={"file": ("t.npz", table)}, data={"name": "t"}).json()
    body = spec(dataset={"id": ds["id"]}, space={"id": "mlp", "options": {}})
    r = api.post("/api/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    # The runner's rule on the same shape builds the space the API validated.
    space = fit_space("mlp", {}, DataShape.of([30], 2))
    assert (space.options["in_features"], space.options["num_classes"]) == (30, 2)
    # A data-bound option that disagrees with the data is named.
    wrong = spec(dataset={"id": ds["id"]}, space={"id": "mlp", "options": {"in_features": 64}})
    assert (
        "the dataset has 30"
        in _errors(api.post("/api/v1/jobs", json=wrong))["space.options.in_features"]
    )


def test_a_flops_bound_is_judged_on_the_space_fitted_to_16x16_images(api: Api) -> None:
    """On 16x16 images mbv3's smallest network has 9.9 M MACs (not the 40.2 M of the space at
    its default resolutions): a 15 M bound is accepted, a 5 M bound refused with that floor."""
    data = {"name": "synthetic", "options": {"shape": [1, 16, 16], "classes": 4}}
    floor = fit_space("mbv3", {}, DataShape.of([1, 16, 16], 4))
    smallest = floor.flops(floor.min_arch())
    assert 9.5e6 < smallest < 10.5e6
    default = get_space("mbv3")
    assert default.flops(default.min_arch()) > 3 * smallest

    def job(bound: float) -> dict[str, Any]:
        objectives = [{"name": "accuracy"}, {"name": "flops", "bound": bound}]
        return spec(
            dataset=data, space={"id": "mbv3", "options": {}}, **{"search.objectives": objectives}
        )

    assert api.post("/api/v1/jobs", json=job(15e6)).status_code == 201
    reason = _errors(api.post("/api/v1/jobs", json=job(5e6)))["search.objectives[1].bound"]
    assert f"{smallest:,}" in reason and "on this dataset" in reason


def test_an_image_space_on_a_table_is_refused_at_submission(api: Api) -> None:
    table = {"name": "synthetic", "options": {"shape": [12], "classes": 3}}
    r = api.post("/api/v1/jobs", json=spec(dataset=table, space={"id": "mbv3", "options": {}}))
    assert "space 'mbv3' needs image data" in _errors(r)["space.id"]


# ----- a throwaway entry of each kind --------------------------------------------------------
def energy(space: Any, arch: Any) -> float:
    """A made-up energy model: 1 mJ per million MACs."""
    return float(space.flops(arch)) / 1e6


class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float | None = Field(default=None, gt=0)


class ToySpace(MLPSpace):
    id = "toy-mlp"


# The throwaway space's torch half (``nn=`` names this module): the mlp supernet's layers.
def build_supernet(space: Any) -> Any:
    from search_spaces.nn.mlp import MLPSupernet

    return MLPSupernet(space)


def build_static(space: Any, arch: Any) -> Any:
    from search_spaces.nn.mlp import build_static_mlp

    return build_static_mlp(space, arch)


def latency_units(space: Any, arch: Any) -> Any:
    from search_spaces.nn import mlp

    return mlp.latency_units(space, arch)


def covering_archs(space: Any) -> Any:
    from search_spaces.nn import mlp

    return mlp.covering_archs(space)


# The throwaway upload format: a CSV table whose last column is the class label.
def read_csv(*, seed: int = 0, path: str | None = None) -> Arrays:
    rows = np.loadtxt(str(path), delimiter=",", dtype=np.float32, ndmin=2)
    x, y = rows[:, :-1], rows[:, -1].astype(np.int64)
    return Arrays("toy-csv", x, y, RawLayout("ND", "float32"), info={"path": path})


def inspect_csv(path: Any, limits: Any) -> dict[str, Any]:
    try:
        rows = np.loadtxt(str(path), delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise DatasetError(f"csv: not a numeric table ({exc})") from exc
    classes = len(np.unique(rows[:, -1]))
    return {"num_samples": len(rows), "input_shape": [rows.shape[1] - 1], "num_classes": classes}


@pytest.fixture
def throwaway() -> Iterator[None]:
    """One entry of each kind the 'add X' table covers: space (with its torch half), searcher,
    dataset (a built-in one and an upload format), objective, export format. Registered for
    this test only."""

    @register_space(
        "toy-mlp",
        "a throwaway space",
        modality="table",
        fit=lambda d: {"in_features": d.input_shape[0], "num_classes": d.num_classes},
        data_bound=("in_features", "num_classes"),
        nn=__name__,
    )
    def make(**options: Any) -> ToySpace:
        return ToySpace(**options)

    entries = [
        Entry("searcher", "toy-search", "a throwaway searcher", ToyOptions, "tests.x:Toy"),
        Entry(
            "dataset",
            "toy-data",
            "a throwaway dataset",
            SplitOptions,
            "tests.x:load",
            info={
                "builtin": True,
                "file_option": None,
                "suffix": None,
                "inspect": None,
                "shape": lambda options, info: DataShape.of([5], 2),
            },
        ),
        Entry(
            "objective",
            "energy_mj",
            "a throwaway analytic objective",
            impl="tests.api.test_catalog_api:energy",
            info={
                "direction": "min",
                "bound": "positive",
                "unit": "mJ",
                "label": "energy",
                "analytic": True,
            },
        ),
        Entry(
            "export",
            "toy-format",
            "a throwaway export format",
            impl="tests.x:write",
            info={
                "artifact_kind": "subnet_toy",
                "suffix": "toy",
                "media_type": "x/y",
                "tolerance": 0.0,
            },
        ),
    ]
    entries.append(
        dataset_entry(
            "toy-csv",
            "a throwaway upload format: a CSV table, label last",
            SplitOptions,
            f"{__name__}:read_csv",
            lambda options, info: DataShape.of(info["input_shape"], info["num_classes"]),
            builtin=False,
            file_option="path",
            suffix=".csv",
            inspect=inspect_csv,
        )
    )
    for e in entries:
        register(e)
    try:
        yield
    finally:
        for e in entries:
            CATALOG.unregister(e.kind, e.name)
        unregister_space("toy-mlp")


def test_a_throwaway_entry_of_each_kind_is_in_the_catalog_and_in_validation(
    api: Api, throwaway: None
) -> None:
    body = api.get("/api/v1/catalog").json()["kinds"]
    for kind, name in [
        ("space", "toy-mlp"),
        ("searcher", "toy-search"),
        ("dataset", "toy-data"),
        ("dataset", "toy-csv"),
        ("objective", "energy_mj"),
        ("export", "toy-format"),
    ]:
        assert name in [e["name"] for e in body[kind]["entries"]], (kind, name)
    toy = next(e for e in body["searcher"]["entries"] if e["name"] == "toy-search")
    assert "temperature" in toy["options_schema"]["properties"]

    job = spec(
        space={"id": "toy-mlp", "options": {}},
        dataset={"name": "toy-data"},
        **{
            "search.algorithm": "toy-search",
            "search.options": {"temperature": 0.5},
            "search.objectives": [{"name": "accuracy"}, {"name": "energy_mj", "bound": 3}],
        },
    )
    r = api.post("/api/v1/jobs", json=job)
    assert r.status_code == 201, r.text
    bad = {**job, "search": {**job["search"], "options": {"temperature": -1}}}
    assert "search.options.temperature" in _errors(api.post("/api/v1/jobs", json=bad))
    bad = {**job, "search": {**job["search"], "objectives": [{"name": "energy_mj", "bound": 0}]}}
    assert "energy_mj bound must be positive" in str(_errors(api.post("/api/v1/jobs", json=bad)))
    # An analytic objective's ceiling is judged on the fitted space's smallest network.
    tiny = [{"name": "accuracy"}, {"name": "energy_mj", "bound": 1e-9}]
    bad = {**job, "search": {**job["search"], "objectives": tiny}}
    reason = _errors(api.post("/api/v1/jobs", json=bad))["search.objectives[1].bound"]
    assert "energy_mj <= 1e-09 is impossible" in reason
    # The throwaway space takes tables only: on digits (images) it is refused at submission.
    on_images = {**job, "dataset": {"name": "digits"}}
    assert "needs table data" in _errors(api.post("/api/v1/jobs", json=on_images))["space.id"]
    # The export format is a download format of every candidate.
    assert (
        api.get("/api/v1/candidates/1/subnet", params={"format": "toy-format"}).status_code == 404
    )
    assert api.get("/api/v1/candidates/1/subnet", params={"format": "nope"}).status_code == 422


def test_a_throwaway_space_and_upload_format_run_through_every_layer(
    api: Api, throwaway: None, tmp_path: Any
) -> None:
    """The space's torch half and the format's reader are found through their registrations:
    the upload is checked by the format's inspector, the job's space is fitted to the stored
    shape, and the workers build, time and load them with no edit anywhere else."""
    from search_spaces.nn import build_static, build_supernet
    from workers.data import load_dataset
    from workers.latency.units import covering_archs as covering
    from workers.latency.units import units_of

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 7))
    table = np.column_stack([x, (x[:, 0] > 0).astype(int)])
    text = "\n".join(",".join(f"{v:g}" for v in row) for row in table)
    r = api.post("/api/v1/datasets", files={"file": ("t.csv", text.encode())}, data={"name": "t"})
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["format"] == "toy-csv" and ds["info"]["input_shape"] == [7]
    bad = api.post("/api/v1/datasets", files={"file": ("b.csv", b"a,b\n1,x")}, data={"name": "b"})
    assert "csv: not a numeric table" in _errors(bad)["file"]
    job = spec(dataset={"id": ds["id"]}, space={"id": "toy-mlp", "options": {}})
    assert api.post("/api/v1/jobs", json=job).status_code == 201
    wrong = spec(dataset={"id": ds["id"]}, space={"id": "toy-mlp", "options": {"in_features": 6}})
    assert (
        "the dataset has 7"
        in _errors(api.post("/api/v1/jobs", json=wrong))["space.options.in_features"]
    )

    path = tmp_path / "t.csv"
    path.write_text(text)
    data = load_dataset("toy-csv", seed=0, path=str(path), val_fraction=0.2)
    assert data.input_shape == (7,) and sum(data.sizes().values()) == 60
    space = fit_space("toy-mlp", {}, DataShape.of(data.input_shape, data.num_classes))
    assert isinstance(space, ToySpace) and space.options["in_features"] == 7
    net, arch = build_supernet(space), space.min_arch()
    static = build_static(space, arch)
    assert set(static.state_dict()) == set(net.extract(arch).state_dict())
    keys = {u.key for a in covering(space) for u in units_of(space, a)}
    assert {u.key for u in units_of(space, arch)} <= keys


def test_augmentation_is_refused_for_a_table_at_submission_and_reaches_the_trainer(
    api: Api,
) -> None:
    from workers.data import load_dataset
    from workers.pipeline.work.training import train_config

    table = {"name": "synthetic", "options": {"shape": [12], "classes": 3}}
    augment = {"crop": "pad", "padding": 2, "flip": True}
    bad = spec(dataset=table, space={"id": "mlp", "options": {}}, **{"training.augment": augment})
    assert (
        "crops and flips images" in _errors(api.post("/api/v1/jobs", json=bad))["training.augment"]
    )
    good = spec(space={"id": "mlp", "options": {}}, **{"training.augment": augment})
    assert api.post("/api/v1/jobs", json=good).status_code == 201
    data = load_dataset("digits", seed=0)
    space = fit_space("mlp", {}, DataShape.of(data.input_shape, data.num_classes))
    cfg = train_config(space, data, {"preset": "tiny", "augment": augment})
    assert (cfg.augment.crop, cfg.augment.padding, cfg.augment.flip) == ("pad", 2, True)
