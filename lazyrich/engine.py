"""The batched sweep engine: grid -> chunks -> jit(vmap(scan(step))) -> xarray.Dataset.

For every value of the static (shape-changing) axes the engine compiles one function that runs a
whole chunk of batched runs: `jax.vmap` over runs of a `lax.scan` over log points, each an inner
`lax.scan` of `log_every` optimisation steps. Every run draws its randomness from
`jax.random.key(seed)` alone and every batched parameter is a traced value even when it is not
swept, so a run gives the same numbers whichever other runs share its chunk (bit-identical for a
fixed chunk shape; to rounding across chunk sizes). The last chunk is padded by repeating its
last run so all chunks share one compiled shape.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax
from tqdm.auto import tqdm

from lazyrich.experiments.base import Experiment, get_experiment
from lazyrich.grid import Grid, make_grid

DEFAULT_MEMORY_BUDGET_BYTES = 1 << 30
CPU_GROUP_BYTES = 2 << 20


def _make_run_one(experiment: Experiment, static: Mapping[str, Any]):
    """One run as a pure function of its batched parameters (a dict of traced scalars)."""
    n_log = static["steps"] // static["log_every"]
    loss = experiment.loss

    def mask(logged, diverged):
        return {k: jnp.where(diverged, jnp.nan, v) for k, v in logged.items()}

    def run_one(batched: dict[str, jax.Array]):
        params = {**static, **batched}
        state0 = experiment.init(jax.random.key(params["seed"]), params)
        once = experiment.run_metrics(state0, params) if experiment.run_metrics else {}

        def inner(state, _):
            return experiment.step(state, params), None

        def outer(carry, _):
            state, diverged = carry
            state, _ = lax.scan(inner, state, None, length=static["log_every"])
            logged = experiment.metrics(state, params)
            diverged = diverged | ~jnp.isfinite(logged[loss])
            return (state, diverged), mask(logged, diverged)

        logged0 = experiment.metrics(state0, params)
        diverged0 = ~jnp.isfinite(logged0[loss])
        (_, diverged), logged = lax.scan(outer, (state0, diverged0), None, length=n_log)
        curves = {k: jnp.concatenate([v[None], logged[k]]) for k, v in
                  mask(logged0, diverged0).items()}
        return curves, once, diverged

    return run_one


@functools.lru_cache(maxsize=64)
def _compiled_runner(experiment: Experiment, static_items: tuple, dtype: str,
                     vmap_size: int | None):
    """jit(vmap(run_one)) for one static point and float dtype, cached across sweeps.

    With `vmap_size`, groups of that many runs are vmapped and the groups follow one another
    in a `lax.map` inside the same compiled program (no Python loop).
    """
    run_one = _make_run_one(experiment, dict(static_items))
    if vmap_size is None:
        return jax.jit(jax.vmap(run_one))
    return jax.jit(lambda inputs: lax.map(run_one, inputs, batch_size=vmap_size))


def _batched_dtype(kind: str):
    return jnp.result_type(float) if kind == "float" else jnp.result_type(int)


def _chunk_inputs(grid: Grid, columns: dict[str, np.ndarray], index: np.ndarray) -> dict:
    """Batched parameter arrays for the runs `index` (swept and constant ones alike)."""
    params = grid.experiment.parameters
    inputs = {}
    for name, values in columns.items():
        inputs[name] = jnp.asarray(values[index], _batched_dtype(params[name].kind))
    for name, value in grid.batched_scalars().items():
        inputs[name] = jnp.full(index.shape, value, _batched_dtype(params[name].kind))
    return inputs


def _state_bytes(grid: Grid, static: Mapping[str, Any]) -> int:
    """Bytes of one run's state (weights, data, ...), from shapes alone (nothing is run)."""
    experiment = grid.experiment
    example = _chunk_inputs(grid, grid.batched_columns(), np.zeros(1, dtype=int))
    one = {k: v[0] for k, v in example.items()}

    def state_of(batched):
        return experiment.init(jax.random.key(batched["seed"]), {**static, **batched})

    leaves = jax.tree_util.tree_leaves(jax.eval_shape(state_of, one))
    return sum(leaf.size * leaf.dtype.itemsize for leaf in leaves)


def _default_sizes(grid: Grid, static: Mapping[str, Any], n_batched: int, chunk_size,
                   vmap_size, memory_budget_bytes: int) -> tuple[int, int | None]:
    """(runs per chunk, runs per vmap group) when the caller leaves them to the engine.

    A chunk holds as many runs as fit the memory budget (state x4 for gradients and
    temporaries, plus logs). On CPUs, vmapping runs whose states outgrow the caches turns each
    matmul into a slower batched matmul (measured 1.5x slower per run at the paper's size), so
    runs are vmapped in groups of about CPU_GROUP_BYTES of state; accelerators vmap the chunk.
    """
    state_bytes = _state_bytes(grid, static)
    if chunk_size is None:
        n_log = static["steps"] // static["log_every"] + 1
        per_run = 4 * state_bytes + 8 * n_log * len(grid.experiment.outputs)
        chunk_size = max(1, min(n_batched, memory_budget_bytes // per_run))
    chunk_size = min(chunk_size, n_batched)
    if vmap_size is None and jax.default_backend() == "cpu":
        vmap_size = max(1, CPU_GROUP_BYTES // state_bytes)
    if vmap_size is not None and vmap_size >= chunk_size:
        vmap_size = None
    return chunk_size, vmap_size


def _check_positive_integer(name: str, value, allow_none: bool) -> None:
    allowed = "a positive integer" + (" or None" if allow_none else "")
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; {name} must be "
                        f"{allowed}")
    if value < 1:
        raise ValueError(f"{name}={value!r} is out of range; {name} must be {allowed}")


def _check_engine_options(chunk_size, vmap_size, progress, memory_budget_bytes) -> None:
    _check_positive_integer("chunk_size", chunk_size, allow_none=True)
    _check_positive_integer("vmap_size", vmap_size, allow_none=True)
    _check_positive_integer("memory_budget_bytes", memory_budget_bytes, allow_none=False)
    if not isinstance(progress, bool):
        raise TypeError(f"progress={progress!r} has type {type(progress).__name__}; progress "
                        f"must be True or False")


def sweep(experiment: str | Experiment, *, chunk_size: int | None = None,
          vmap_size: int | None = None, progress: bool = True,
          memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES, **params) -> xr.Dataset:
    """Run every combination of the given parameters and return the results as a Dataset.

    Args:
        experiment: name of a registered experiment (see `lazyrich.experiments()`).
        chunk_size: most runs computed at once (in memory together); default: as many as fit in
            `memory_budget_bytes`, at most all runs of one static point.
        vmap_size: runs vectorised together inside a chunk; the chunk's groups of `vmap_size`
            runs follow one another inside the same compiled program (`lax.map`). Default: the
            whole chunk on accelerators; on CPUs groups of about 2 MiB of state, since vmapping
            many large runs turns their matmuls into slower batched matmuls
            (`benchmarks/sweep_throughput.py` measures the choices).
        progress: show a progress bar over runs (runs/s, ETA).
        memory_budget_bytes: memory allowed for one chunk when `chunk_size` is None.
        **params: experiment parameters. A list/tuple/range/1-d array makes a sweep axis (even of
            length 1), in keyword order; a scalar fixes the parameter for every run.

    Returns:
        xarray.Dataset with one dimension per sweep axis plus `step` (logged step numbers
        0, log_every, ..., steps) for curves; one value per run for per-run outputs; a boolean
        `diverged` (axes...) marking runs whose loss became NaN/inf (their later values are NaN);
        a `time` coordinate (step x the experiment's time-scale parameter) where it has one;
        `attrs` hold the configuration (`config`, JSON) and library versions.

    Raises:
        ValueError / TypeError: bad experiment name, parameter name, value, or engine option, all
            before anything is compiled.
    """
    exp = get_experiment(experiment)
    _check_engine_options(chunk_size, vmap_size, progress, memory_budget_bytes)
    grid = make_grid(exp, params)
    static_points = list(grid.static_points())
    if exp.check is not None:
        for _, static in static_points:
            exp.check(static)
    columns = grid.batched_columns()
    n_batched = int(np.prod([len(a.values) for a in grid.batched_axes], dtype=np.int64))
    n_log = grid.scalars["steps"] // grid.scalars["log_every"] + 1
    outputs = exp.active_outputs(grid.scalars)
    shapes = {k: (len(static_points), n_batched) + ((n_log,) if o.per_step else ())
              for k, o in outputs.items()}
    curves = {k: None for k, o in outputs.items() if o.per_step}
    per_run = {k: None for k, o in outputs.items() if not o.per_step}
    diverged = np.zeros((len(static_points), n_batched), dtype=bool)

    started = time.perf_counter()
    with tqdm(total=grid.n_runs, unit="run", disable=not progress,
              desc=f"sweep {exp.name}") as bar:
        for s, (_, static) in enumerate(static_points):
            size, group = _default_sizes(grid, static, n_batched, chunk_size, vmap_size,
                                         memory_budget_bytes)
            runner = _compiled_runner(exp, tuple(sorted(static.items())),
                                      str(jnp.result_type(float)), group)
            for start in range(0, n_batched, size):
                index = np.arange(start, min(start + size, n_batched))
                padded = np.concatenate([index, np.full(size - len(index), index[-1])])
                logged, once, bad = runner(_chunk_inputs(grid, columns, padded))
                for buffers, values in ((curves, logged), (per_run, once)):
                    for k in buffers:
                        value = np.asarray(values[k])[: len(index)]
                        if buffers[k] is None:  # trailing dims (Output.dims) known only now
                            buffers[k] = np.empty(shapes[k] + value.shape[len(shapes[k]) - 1:])
                        buffers[k][s, index] = value
                diverged[s, index] = np.asarray(bad)[: len(index)]
                bar.update(len(index))
    return _to_dataset(grid, curves, per_run, diverged, time.perf_counter() - started)


def _arrange(grid: Grid, flat: np.ndarray) -> np.ndarray:
    """(static points, batched runs, ...) -> (axes in keyword order..., ...)."""
    static_names = [a.name for a in grid.static_axes]
    batched_names = [a.name for a in grid.batched_axes]
    shape = [len(a.values) for a in grid.static_axes] + [len(a.values) for a in grid.batched_axes]
    grouped = flat.reshape(tuple(shape) + flat.shape[2:])
    current = static_names + batched_names
    order = [current.index(a.name) for a in grid.axes]
    return grouped.transpose(*order, *range(len(order), grouped.ndim))


def _versions() -> dict[str, str]:
    from lazyrich import __version__
    return {"lazyrich_version": __version__, "jax_version": jax.__version__,
            "numpy_version": np.__version__, "xarray_version": xr.__version__}


def _attribute(value: Any) -> Any:
    """netCDF attributes hold numbers and strings: store booleans as 0/1."""
    return int(value) if isinstance(value, bool) else value


def _to_dataset(grid: Grid, curves: dict, per_run: dict, diverged: np.ndarray,
                seconds: float) -> xr.Dataset:
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
                        _arrange(grid, v).astype(dtype), {"description": exp.outputs[k].doc})
    for k, v in per_run.items():
        data_vars[k] = (axis_names + list(exp.outputs[k].dims), _arrange(grid, v).astype(dtype),
                        {"description": exp.outputs[k].doc})
    data_vars["diverged"] = (axis_names, _arrange(grid, diverged),
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
        "wall_seconds": seconds,
        **_versions(),
        **{k: _attribute(v) for k, v in grid.scalars.items()},
    })
    return ds
