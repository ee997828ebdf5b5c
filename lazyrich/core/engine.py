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

import contextlib
import functools
import json
import os
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from lazyrich.core import ntk_steps as at_steps
from lazyrich.core.checks import MEMORY_FRACTION, check_positive_integer
from lazyrich.core.chunks import ChunkJob, compute_chunk
from lazyrich.core.devices import (
    DEFAULT_MATMUL_PRECISION,
    check_matmul_precision,
    device_memory,
)
from lazyrich.core.grid import Grid, make_grid
from lazyrich.core.labels import flat_to_dataset, versions
from lazyrich.core.plan import default_sizes, fit_in_memory
from lazyrich.core.progress import reporting
from lazyrich.core.store import (
    SweepStore,
    check_resumable,
    same_runs,
    store_lock,
    stored_description,
)
from lazyrich.experiments.base import Experiment, get_experiment


def _run_locally(experiment, grid, columns, jobs, ntk_steps):
    for job in jobs:
        yield job, compute_chunk(experiment, grid, columns, job, ntk_steps)


def _ray_executor(executor):
    from lazyrich.core.distributed import ray_chunks

    return functools.partial(ray_chunks, address=None if executor == "ray" else executor)


def _check_engine_options(chunk_size, vmap_size, progress, memory_budget_bytes,
                          matmul_precision) -> int | None:
    """Validate the engine's own options; the chunk size as an int, or None for automatic."""
    if isinstance(chunk_size, str):
        if chunk_size != "auto":
            raise ValueError(f"chunk_size={chunk_size!r} is not a positive integer or 'auto'")
        chunk_size = None
    check_positive_integer("chunk_size", chunk_size, allow_none=True)
    check_positive_integer("vmap_size", vmap_size, allow_none=True)
    check_positive_integer("memory_budget_bytes", memory_budget_bytes, allow_none=True)
    check_matmul_precision(matmul_precision)
    if not isinstance(progress, bool):
        raise TypeError(f"progress={progress!r} has type {type(progress).__name__}; progress "
                        f"must be True or False")
    return chunk_size


def sweep(experiment: str | Experiment, *, chunk_size: int | str | None = "auto",
          vmap_size: int | None = None, progress: bool = True,
          memory_budget_bytes: int | None = None,
          matmul_precision: str = DEFAULT_MATMUL_PRECISION,
          ntk_steps: Sequence[int] | None = None, store: str | os.PathLike | None = None,
          overwrite: bool = False, executor: str | None = None, **params) -> xr.Dataset:
    """Run every combination of the given parameters and return the results as a Dataset.

    Args:
        experiment: name of a registered experiment (see `lazyrich.experiments()`).
        chunk_size: most runs computed at once (in memory together). "auto" (or None, the
            same): as many runs as fit in `memory_budget_bytes` at an estimated four times a
            run's state plus its logs, at most all runs of one static point; then each chunk's
            program is compiled and its own memory analysis shrinks a chunk that would not fit.
            The choice and why are in `attrs["chunk_plan"]` (JSON).
        vmap_size: runs vectorised together inside a chunk; the chunk's groups of `vmap_size`
            runs follow one another inside the same compiled program (`lax.map`). Default: the
            whole chunk on accelerators; on CPUs groups whose state fills about one core's L2
            cache (read from sysfs; 2 MiB where unknown), since vmapping many large runs turns
            their matmuls into slower batched matmuls (`benchmarks/sweep_throughput.py`
            measures the choices).
        progress: show a progress bar over runs (runs/s, ETA).
        memory_budget_bytes: memory for one chunk when `chunk_size` is automatic; default
            MEMORY_FRACTION (0.8) of what the devices have free now: an accelerator's own
            `memory_stats()` (smallest over the local devices), the host's available memory on
            CPU (`LAZYRICH_MEMORY_BYTES` overrides both; `lazyrich info` prints the number).
        matmul_precision: "float32" (default: full-precision products on every backend),
            "tensorfloat32" or "bfloat16" (faster reduced-precision products on GPUs/TPUs; on
            CPUs XLA computes float32 regardless). Recorded in `attrs["matmul_precision"]`;
            the README's "On a GPU" section gives the measured difference in the curves.
        ntk_steps: steps at which an experiment's costly metrics (`ntk_metrics`: NTK, kernel
            alignment, ...) are computed, each a multiple of `log_every` in [0, steps]; default
            the first and last step. Their outputs get an `ntk_step` dimension. Only for
            experiments that have such metrics.
        store: a directory (zarr) to which every finished chunk is written at once. Calling
            again with the same store resumes: finished chunks are read, not rerun. A store made
            by another configuration is refused, naming what differs. `lazyrich.open(store)`
            reads what is finished.
        overwrite: replace a store made by another configuration.
        executor: None to compute chunks in this process; "ray" to send each chunk to Ray as a
            task (a local Ray instance, or the cluster `ray.init` already joined), or a Ray
            address ("ray://host:10001", "auto") to join first. Results are gathered in grid
            order and written to the store as they arrive; a worker that dies has its chunk
            retried. Needs the `ray` extra.
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
        MemoryEstimateError (a ValueError and MemoryError): the compiled program of a chunk plus
            the results would not fit in the memory this process may use; raised after
            compilation, before anything is allocated, naming the parameter to change.
    """
    exp = get_experiment(experiment)
    chunk_size = _check_engine_options(chunk_size, vmap_size, progress, memory_budget_bytes,
                                       matmul_precision)
    if executor is not None and not isinstance(executor, str):
        raise TypeError(f"executor={executor!r} has type {type(executor).__name__}; executor "
                        f"must be None, 'ray' or a Ray address string")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite={overwrite!r} has type {type(overwrite).__name__}; "
                        f"overwrite must be True or False")
    requested = make_grid(exp, params)
    static_points = list(requested.static_points())
    if exp.check is not None:
        for _, static in static_points:
            exp.check(static)
    if exp.check_batched is not None:
        values = {a.name: a.values for a in requested.batched_axes}
        values.update({k: (v,) for k, v in requested.batched_scalars().items()})
        for _, static in static_points:
            exp.check_batched(static, values)
    ntk_steps = at_steps.check_ntk_steps(exp, ntk_steps, requested.scalars["steps"],
                                         requested.scalars["log_every"])
    if store is not None:
        store = _check_store_path(store)
    with store_lock(store):
        grid = requested if store is None else _grid_in_store_order(store, requested)
        if store is not None:
            check_resumable(store, {**grid.config(), "dtype": _dtype_name(),
                                    "matmul_precision": matmul_precision}, overwrite)
        plan = ChunkPlan(chunk_size, vmap_size, memory_budget_bytes, matmul_precision)
        flat, seconds, chosen = _sweep_grid(grid, store, overwrite, plan, ntk_steps, executor,
                                            progress)
    ds = flat_to_dataset(grid, flat, ntk_steps, seconds)
    ds.attrs["matmul_precision"] = matmul_precision
    ds.attrs["chunk_plan"] = json.dumps(chosen)
    return ds if grid is requested else in_requested_order(ds, requested)


class ChunkPlan(NamedTuple):
    """The caller's engine options that decide chunking and compilation."""

    chunk_size: int | None
    vmap_size: int | None
    memory_budget_bytes: int | None
    matmul_precision: str


def _dtype_name() -> str:
    return str(np.dtype(jnp.result_type(float)))


def _check_store_path(store) -> str:
    if not isinstance(store, str | os.PathLike):
        raise TypeError(f"store={store!r} has type {type(store).__name__}; store must be a "
                        f"directory path (str or os.PathLike) or None")
    path = os.fspath(store)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"store={path!r} exists and is not a directory")
    return path


def _grid_in_store_order(path: str, requested: Grid) -> Grid:
    """The grid as the store at `path` lays it out, when it holds the same runs (axes and their
    values in any order); otherwise the requested grid (the store will refuse it by name)."""
    try:
        description = stored_description(path)
    except ValueError:
        return requested
    if description.get("axes") == requested.config()["axes"] and \
            list(description["axes"]) == list(requested.config()["axes"]):
        return requested
    if not same_runs(description, requested.config()):
        return requested
    return make_grid(requested.experiment, {**description["axes"], **description["parameters"]})


def in_requested_order(ds: xr.Dataset, requested: Grid) -> xr.Dataset:
    """A Dataset laid out as another grid with the same runs, in `requested`'s axis and value
    order (labels move with their data: nothing is recomputed or rounded)."""
    positions = {}
    for axis in requested.axes:
        held = list(ds[axis.name].values)
        positions[axis.name] = [held.index(value) for value in axis.values]
    order = [a.name for a in requested.axes]
    moved = ds.isel(positions).transpose(*order, ...)
    coords = {name: moved.coords[name] for name in order}
    coords.update({name: moved.coords[name] for name in moved.coords if name not in coords})
    ordered = xr.Dataset({name: moved[name].variable for name in moved.data_vars},
                         coords=coords, attrs=dict(moved.attrs))
    ordered.attrs["config"] = json.dumps(requested.config())
    return ordered


def _sweep_grid(grid: Grid, store: str | None, overwrite: bool, plan: ChunkPlan,
                ntk_steps: tuple[int, ...], executor, progress: bool
                ) -> tuple[dict, float, dict]:
    """Plan, check memory, open the store, run the chunks; (flat results, seconds, the plan
    as recorded in attrs["chunk_plan"])."""
    exp = grid.experiment
    static_points = list(grid.static_points())
    columns = grid.batched_columns()
    n_batched = int(np.prod([len(a.values) for a in grid.batched_axes], dtype=np.int64))
    n_log = grid.scalars["steps"] // grid.scalars["log_every"] + 1
    outputs = exp.active_outputs(grid.scalars)
    shapes = {k: (len(static_points), n_batched)
              + ((len(ntk_steps),) if o.at_ntk_steps else (n_log,) if o.per_step else ())
              for k, o in outputs.items()}
    shapes["diverged"] = (len(static_points), n_batched)
    memory = device_memory()
    budget = plan.memory_budget_bytes or int(MEMORY_FRACTION * memory.free_bytes)
    layout = [(s, static, *default_sizes(grid, static, n_batched, plan.chunk_size,
                                          plan.vmap_size, budget))
              for s, (_, static) in enumerate(static_points)]
    if store is not None:
        layout = _store_layout(store, layout, plan.chunk_size, n_batched)
    layout, full_shapes = fit_in_memory(grid, columns, layout, plan.chunk_size is not None,
                                        ntk_steps, shapes, store is not None,
                                        plan.matmul_precision, memory)
    chosen = {"chunk_size": int(max(entry[2] for entry in layout)),
              "vmap_size": None if layout[0][3] is None else int(layout[0][3]),
              "devices": jax.local_device_count(), "backend": jax.default_backend(),
              "memory_bytes": int(memory.free_bytes), "memory_source": memory.source,
              "budget_bytes": int(budget),
              "chosen_by": "caller" if plan.chunk_size is not None else
              "store" if store is not None and os.path.isdir(store) and os.listdir(store)
              else "memory budget"}
    run_store = None
    if store is not None:
        description = {**grid.config(), "chunk_size": int(layout[0][2]),
                       "dtype": _dtype_name(), "matmul_precision": plan.matmul_precision,
                       "ntk_steps": list(ntk_steps)}
        run_store = SweepStore(store, description, full_shapes, versions(), overwrite)
    flat: dict[str, np.ndarray] = {k: np.full(v, np.nan) for k, v in full_shapes.items()
                                   if k != "diverged"}
    flat["diverged"] = np.zeros(shapes["diverged"], dtype=bool)
    jobs = []
    for s, static, size, group in layout:
        for chunk, start in enumerate(range(0, n_batched, size)):
            index = np.arange(start, min(start + size, n_batched))
            if run_store is None or not run_store.is_finished(s, chunk):
                jobs.append(ChunkJob(s, chunk, tuple(sorted(static.items())), group, index,
                                     size, plan.matmul_precision))
    run_chunks = _run_locally if executor is None else _ray_executor(executor)
    started = time.perf_counter()
    steps = grid.scalars["steps"]
    done_before = (grid.n_runs - sum(len(j.index) for j in jobs)) * steps
    with tqdm(total=grid.n_runs * steps, unit="step", unit_scale=True, disable=not progress,
              desc=f"sweep {exp.name} ({grid.n_runs} runs)", initial=done_before,
              dynamic_ncols=True) as bar, \
            reporting(bar.update) if progress else contextlib.nullcontext():
        for job, values in run_chunks(exp, grid, columns, jobs, ntk_steps):
            if run_store is not None:
                run_store.write_chunk(job.static_index, job.chunk_index, values)
            else:
                for k, value in values.items():
                    flat[k][job.static_index, job.index] = value
            done_before += len(job.index) * steps
            bar.n = done_before  # exact at every chunk's end, whatever the callbacks counted
            bar.refresh()
    if run_store is not None:
        flat, _ = run_store.read()
    return flat, time.perf_counter() - started, chosen


def _store_layout(path: str, layout: list, chunk_size, n_batched: int) -> list:
    """Every static point uses one chunk size in a store (the smallest default, the caller's,
    or the store's when resuming), so each engine chunk is exactly one zarr chunk."""
    if chunk_size is None and os.path.isdir(path):
        try:
            chunk_size = stored_description(path)["chunk_size"]
        except ValueError:
            chunk_size = None
    size = min(chunk_size or min(entry[2] for entry in layout), n_batched)
    return [(s, static, size, group if group is not None and group < size else None)
            for s, static, _, group in layout]
