"""Turning the engine's flat (static point, run, ...) results into a labelled xarray.Dataset.

The engine computes runs grouped by static point; here the flat arrays are reshaped to one
dimension per sweep axis in keyword order, given coordinates (`step`, `time`, `ntk_step`),
descriptions and the configuration in `attrs`. Stores hold the same flat arrays, so
`open_store` rebuilds a Dataset from a store with the same code.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from lazyrich.core.grid import Grid, make_grid
from lazyrich.experiments.base import get_experiment


def open_store(path: str | os.PathLike) -> xr.Dataset:
    """The Dataset of what a sweep store holds; runs of unfinished chunks are NaN.

    A boolean `finished` (axes...) says which runs are complete.
    """
    from lazyrich.core.io import check_path_type
    from lazyrich.core.store import read_store

    check_path_type(path, "path", "the directory of a sweep store")
    if not os.path.isdir(path):
        raise ValueError(f"path={os.fspath(path)!r} is not a directory; lazyrich.open reads a "
                         f"sweep store (sweep(..., store=path)); use lazyrich.load for .nc files")
    description, flat, finished = read_store(path)
    exp = get_experiment(description["experiment"])
    grid = make_grid(exp, {**description["axes"], **description["parameters"]})
    ds = flat_to_dataset(grid, flat, tuple(description["ntk_steps"]), float("nan"))
    ds["finished"] = ([a.name for a in grid.axes], arrange(grid, finished),
                      {"description": "True for runs whose chunk is complete in the store"})
    return ds


def flat_to_dataset(grid: Grid, flat: dict, ntk_steps: tuple[int, ...],
                     seconds: float) -> xr.Dataset:
    """Split flat (static point, run, ...) arrays by output kind and label them."""
    outputs = grid.experiment.outputs
    curves = {k: v for k, v in flat.items() if k in outputs and outputs[k].per_step
              and not outputs[k].at_ntk_steps}
    per_run = {k: v for k, v in flat.items() if k in outputs and not outputs[k].per_step
               and not outputs[k].at_ntk_steps}
    costly = {k: v for k, v in flat.items() if k in outputs and outputs[k].at_ntk_steps}
    return to_dataset(grid, curves, per_run, flat["diverged"], seconds, costly, ntk_steps)


def arrange(grid: Grid, flat: np.ndarray) -> np.ndarray:
    """(static points, batched runs, ...) -> (axes in keyword order..., ...)."""
    static_names = [a.name for a in grid.static_axes]
    batched_names = [a.name for a in grid.batched_axes]
    shape = [len(a.values) for a in grid.static_axes] + [len(a.values) for a in grid.batched_axes]
    grouped = flat.reshape(tuple(shape) + flat.shape[2:])
    current = static_names + batched_names
    order = [current.index(a.name) for a in grid.axes]
    return grouped.transpose(*order, *range(len(order), grouped.ndim))


def versions() -> dict[str, str]:
    from lazyrich import __version__
    return {"lazyrich_version": __version__, "jax_version": jax.__version__,
            "numpy_version": np.__version__, "xarray_version": xr.__version__}


def attribute(value: Any) -> Any:
    """netCDF attributes hold numbers and strings: store booleans as 0/1."""
    return int(value) if isinstance(value, bool) else value


def to_dataset(grid: Grid, curves: dict, per_run: dict, diverged: np.ndarray,
                seconds: float, costly: dict, ntk_steps: tuple[int, ...]) -> xr.Dataset:
    exp = grid.experiment
    axis_names = [a.name for a in grid.axes]
    steps, log_every = grid.scalars["steps"], grid.scalars["log_every"]
    coords: dict[str, Any] = {a.name: np.asarray(a.values) for a in grid.axes}
    coords["step"] = ("step", np.arange(0, steps + 1, log_every),
                      {"units": "optimisation steps"})
    time_description = None
    if callable(exp.time_scale):
        try:
            coords["time"] = ("step", float(exp.time_scale(grid.scalars)) * coords["step"][1])
            time_description = (exp.time_scale.__doc__ or "step x time per step").strip()
        except KeyError:  # a parameter the time unit needs is a sweep axis
            pass
    elif exp.time_scale is not None:
        time_description = f"step x {exp.time_scale}"
        if exp.time_scale in axis_names:
            scale = np.asarray(grid.axes[axis_names.index(exp.time_scale)].values, float)
            coords["time"] = ((exp.time_scale, "step"), scale[:, None] * coords["step"][1])
        else:
            coords["time"] = ("step", float(grid.scalars[exp.time_scale]) * coords["step"][1])
    dtype = jnp.result_type(float)
    data_vars = {}
    for k, v in curves.items():
        data_vars[k] = (axis_names + ["step", *exp.outputs[k].dims],
                        arrange(grid, v).astype(dtype), {"description": exp.outputs[k].doc})
    for k, v in per_run.items():
        data_vars[k] = (axis_names + list(exp.outputs[k].dims), arrange(grid, v).astype(dtype),
                        {"description": exp.outputs[k].doc})
    if costly:
        coords["ntk_step"] = ("ntk_step", np.asarray(ntk_steps),
                              {"units": "optimisation steps", "description": "steps at which "
                               "the costly (ntk) metrics were computed"})
    for k, v in costly.items():
        data_vars[k] = (axis_names + ["ntk_step", *exp.outputs[k].dims],
                        arrange(grid, v).astype(dtype), {"description": exp.outputs[k].doc})
    data_vars["diverged"] = (axis_names, arrange(grid, diverged),
                             {"description": f"True where {exp.loss} became NaN or inf; later "
                                             f"values of that run are NaN"})
    ds = xr.Dataset(data_vars, coords=coords)
    if "time" in ds.coords:
        ds["time"].attrs["description"] = time_description
    ds.attrs.update({
        "experiment": exp.name,
        "config": json.dumps(grid.config()),
        "dtype": str(np.dtype(dtype)),
        "backend": jax.default_backend(),
        "devices": jax.local_device_count(),
        "wall_seconds": seconds,
        **versions(),
        **{k: attribute(v) for k, v in grid.scalars.items()},
    })
    if exp.resolved_attrs is not None:
        ds.attrs.update(exp.resolved_attrs([static for _, static in grid.static_points()]))
    return ds
