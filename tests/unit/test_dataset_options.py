"""The service's check of dataset options against the readers the workers call: every dataset
entry of the catalog, so a new format is covered by registering it."""

from __future__ import annotations

import inspect

import pytest

from nas_service.catalog import CATALOG, resolve
from nas_service.catalog.datasets import SPLIT_OPTIONS, synthetic
from nas_service.domain import dataset_options as opts


@pytest.mark.parametrize("kind", CATALOG.names("dataset"))
def test_each_kind_allows_exactly_what_its_reader_takes(kind: str) -> None:
    entry = CATALOG.get("dataset", kind)
    params = inspect.signature(resolve(entry)).parameters
    # The seed is the job's, the stored file the service's: neither is a user option; the
    # split options are every dataset's, applied by the workers' loader.
    taken = set(params) - {"seed", entry.info["file_option"] or ""}
    assert entry.options is not None
    assert set(entry.options.model_fields) == taken | set(SPLIT_OPTIONS)
    if kind == "synthetic":
        assert params["n"].default == synthetic.DEFAULT_N
        assert params["shape"].default == synthetic.DEFAULT_SHAPE


def test_the_split_rule_counts_a_default_for_an_option_left_out() -> None:
    assert opts.dataset_option_errors("digits", {"val_fraction": 0.65}) == []
    (err,) = opts.dataset_option_errors("digits", {"val_fraction": 0.75})
    assert err.field == "dataset.options"
    assert err.reason.startswith("val_fraction + test_fraction is 0.95")
    assert opts.dataset_option_errors("digits", {"val_fraction": 0.75, "test_fraction": 0.1}) == []


def test_errors_name_each_option() -> None:
    errors = opts.dataset_option_errors(
        "synthetic", {"n": 4, "classes": 1, "noise": -1, "colour": "red"}
    )
    assert {e.field for e in errors} == {
        "dataset.options.n",
        "dataset.options.classes",
        "dataset.options.noise",
        "dataset.options.colour",
    }
    assert opts.dataset_option_errors("synthetic", {"n": 1000, "shape": [3, 32, 32]}) == []
    (err,) = opts.dataset_option_errors("image-folder", {"size": [8, 8, 8]})
    assert "one side or [height, width]" in err.reason
    assert opts.dataset_option_errors("image-folder", {"size": [16, 24], "grayscale": True}) == []
    (err,) = opts.dataset_option_errors("parquet", {})
    assert err.field == "dataset" and err.reason.startswith("unknown dataset 'parquet'; known:")
