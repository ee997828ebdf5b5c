"""Stores key runs by parameter values: resuming with the axes, or their values, in another order
gives the same labelled Dataset as a fresh run, and a grid with another value is refused."""

import json

import numpy as np
import pytest
import xarray as xr
from conftest import TINY

import lazyrich

GRID = {"alpha": [0.5, 1.0, 2.0], "seed": [0, 1]}


def _same_data(a: xr.Dataset, b: xr.Dataset) -> None:
    """Identical variables, coordinates and dimension order, bit for bit."""
    assert list(a.dims) == list(b.dims)
    for name in ("train_loss", "test_loss", "alignment", "diverged"):
        assert a[name].dims == b[name].dims, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    for axis in GRID:
        np.testing.assert_array_equal(a[axis].values, b[axis].values)


@pytest.mark.parametrize("reordered", [
    {"seed": [0, 1], "alpha": [0.5, 1.0, 2.0]},           # keywords in another order
    {"alpha": [2.0, 0.5, 1.0], "seed": [1, 0]},           # values in another order
    {"seed": [1, 0], "alpha": [1.0, 2.0, 0.5]},           # both
])
def test_resume_in_another_order_equals_a_fresh_run_in_that_order(tmp_path, reordered):
    path = str(tmp_path / "runs.zarr")
    lazyrich.sweep("grokking", store=path, chunk_size=4, progress=False, **GRID, **TINY)
    resumed = lazyrich.sweep("grokking", store=path, progress=False, **reordered, **TINY)
    fresh = lazyrich.sweep("grokking", chunk_size=4, progress=False, **reordered, **TINY)
    _same_data(resumed, fresh)
    assert json.loads(resumed.attrs["config"])["axes"] == json.loads(fresh.attrs["config"])["axes"]
    # each labelled run is the run with those values, whatever the order
    for alpha in GRID["alpha"]:
        for seed in GRID["seed"]:
            np.testing.assert_array_equal(
                resumed.test_loss.sel(alpha=alpha, seed=seed).values,
                fresh.test_loss.sel(alpha=alpha, seed=seed).values)


def test_half_finished_store_resumed_in_another_order(tmp_path, monkeypatch):
    """Chunks finished by the first call are reused, the rest computed, labels right."""
    path = str(tmp_path / "runs.zarr")
    lazyrich.sweep("grokking", store=path, chunk_size=2, progress=False, **GRID, **TINY)
    markers = tmp_path / "runs.zarr" / "_finished"
    for marker in sorted(markers.iterdir())[1:]:
        marker.unlink()  # only the first chunk (alpha=0.5, both seeds) stays finished
    resumed = lazyrich.sweep("grokking", store=path, progress=False, seed=[1, 0],
                             alpha=[2.0, 1.0, 0.5], **TINY)
    fresh = lazyrich.sweep("grokking", chunk_size=2, progress=False, **GRID, **TINY)
    for alpha in GRID["alpha"]:
        for seed in GRID["seed"]:
            np.testing.assert_array_equal(
                resumed.train_loss.sel(alpha=alpha, seed=seed).values,
                fresh.train_loss.sel(alpha=alpha, seed=seed).values)


@pytest.mark.parametrize("changed,fragment", [
    ({"seed": [0, 2], "alpha": [0.5, 1.0, 2.0]}, "sweep axis 'seed' differs"),
    ({"alpha": [0.5, 1.0, 3.0], "seed": [0, 1]}, "sweep axis 'alpha' differs"),
    ({"alpha": [0.5, 1.0], "seed": [0, 1]}, "sweep axis 'alpha' differs"),
    ({"alpha": [0.5, 1.0, 2.0], "seed": 0}, "sweep axis 'seed' differs"),
])
def test_a_grid_with_another_value_is_refused_naming_the_parameter(tmp_path, changed, fragment):
    path = str(tmp_path / "runs.zarr")
    lazyrich.sweep("grokking", store=path, chunk_size=4, progress=False, **GRID, **TINY)
    with pytest.raises(ValueError, match=fragment):
        lazyrich.sweep("grokking", store=path, progress=False, **changed, **TINY)
