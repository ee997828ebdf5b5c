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
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from lazyrich.core import ntk_steps as at_steps
from lazyrich.core.checks import check_positive_integer
from lazyrich.core.chunks import ChunkJob, chunk_inputs, compute_chunk, make_run_one
from lazyrich.core.grid import Grid, make_grid
from lazyrich.core.labels import flat_to_dataset, versions
from lazyrich.experiments.base import Experiment, get_experiment
from lazyrich.measures.ntk import DEFAULT_JACOBIAN_ELEMENTS

DEFAULT_MEMORY_BUDGET_BYTES = 1 << 30
CPU_GROUP_BYTES = 2 << 20


def _state_bytes(grid: Grid, static: Mapping[str, Any]) -> int:
    """Bytes of one run's state (weights, data, ...), from shapes alone (nothing is run)."""
    experiment = grid.experiment
    example = chunk_inputs(grid, grid.batched_columns(), np.zeros(1, dtype=int))
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
        if grid.experiment.ntk_metrics is not None:  # a chunk of Jacobian rows and its image
            per_run += 2 * 4 * DEFAULT_JACOBIAN_ELEMENTS
        chunk_size = max(1, min(n_batched, memory_budget_bytes // per_run))
    chunk_size = min(chunk_size, n_batched)
    if vmap_size is None and jax.default_backend() == "cpu":
        vmap_size = max(1, CPU_GROUP_BYTES // state_bytes)
    if vmap_size is not None and vmap_size >= chunk_size:
        vmap_size = None
    return chunk_size, vmap_size


def _run_locally(experiment, grid, columns, jobs, ntk_steps):
    for job in jobs:
        yield job, compute_chunk(experiment, grid, columns, job, ntk_steps)


def _ray_executor(executor):
    from lazyrich.core.distributed import ray_chunks

    return functools.partial(ray_chunks, address=None if executor == "ray" else executor)


def _check_engine_options(chunk_size, vmap_size, progress, memory_budget_bytes) -> None:
    check_positive_integer("chunk_size", chunk_size, allow_none=True)
    check_positive_integer("vmap_size", vmap_size, allow_none=True)
    check_positive_integer("memory_budget_bytes", memory_budget_bytes)
    if not isinstance(progress, bool):
        raise TypeError(f"progress={progress!r} has type {type(progress).__name__}; progress "
                        f"must be True or False")


def sweep(experiment: str | Experiment, *, chunk_size: int | None = None,
          vmap_size: int | None = None, progress: bool = True,
          memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
          ntk_steps: Sequence[int] | None = None, store: str | os.PathLike | None = None,
          overwrite: bool = False, executor: str | None = None, **params) -> xr.Dataset:
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
    """
    exp = get_experiment(experiment)
    _check_engine_options(chunk_size, vmap_size, progress, memory_budget_bytes)
    if executor is not None and not isinstance(executor, str):
        raise TypeError(f"executor={executor!r} has type {type(executor).__name__}; executor "
                        f"must be None, 'ray' or a Ray address string")
    grid = make_grid(exp, params)
    static_points = list(grid.static_points())
    if exp.check is not None:
        for _, static in static_points:
            exp.check(static)
    if exp.check_batched is not None:
        values = {a.name: a.values for a in grid.batched_axes}
        values.update({k: (v,) for k, v in grid.batched_scalars().items()})
        for _, static in static_points:
            exp.check_batched(static, values)
    ntk_steps = at_steps.check_ntk_steps(exp, ntk_steps, grid.scalars["steps"],
                                         grid.scalars["log_every"])
    columns = grid.batched_columns()
    n_batched = int(np.prod([len(a.values) for a in grid.batched_axes], dtype=np.int64))
    n_log = grid.scalars["steps"] // grid.scalars["log_every"] + 1
    outputs = exp.active_outputs(grid.scalars)
    shapes = {k: (len(static_points), n_batched)
              + ((len(ntk_steps),) if o.at_ntk_steps else (n_log,) if o.per_step else ())
              for k, o in outputs.items()}
    layout = [(s, static, *_default_sizes(grid, static, n_batched, chunk_size, vmap_size,
                                          memory_budget_bytes))
              for s, (_, static) in enumerate(static_points)]
    shapes["diverged"] = (len(static_points), n_batched)
    run_store = None
    if store is not None:
        run_store, layout = _open_store(store, overwrite, grid, layout, chunk_size, ntk_steps,
                                        shapes)
    flat: dict[str, np.ndarray | None] = {k: None for k in outputs}
    flat["diverged"] = np.zeros((len(static_points), n_batched), dtype=bool)

    jobs = []
    for s, static, size, group in layout:
        for chunk, start in enumerate(range(0, n_batched, size)):
            index = np.arange(start, min(start + size, n_batched))
            if run_store is None or not run_store.is_finished(s, chunk):
                jobs.append(ChunkJob(s, chunk, tuple(sorted(static.items())), group, index,
                                     size))
    run_chunks = _run_locally if executor is None else _ray_executor(executor)
    started = time.perf_counter()
    with tqdm(total=grid.n_runs, unit="run", disable=not progress,
              desc=f"sweep {exp.name}", initial=grid.n_runs - sum(len(j.index) for j in jobs)) \
            as bar:
        for job, values in run_chunks(exp, grid, columns, jobs, ntk_steps):
            if run_store is not None:
                run_store.write_chunk(job.static_index, job.chunk_index, values)
            else:
                for k, value in values.items():
                    if flat[k] is None:  # trailing dims (Output.dims) known only now
                        flat[k] = np.empty(shapes[k] + value.shape[len(shapes[k]) - 1:])
                    flat[k][job.static_index, job.index] = value
            bar.update(len(job.index))
    if run_store is not None:
        flat, _ = run_store.read()
    return flat_to_dataset(grid, flat, ntk_steps, time.perf_counter() - started)


def _open_store(path, overwrite: bool, grid: Grid, layout: list, chunk_size, ntk_steps,
                shapes: dict):
    """Open or create the store for this sweep; returns (store, layout with its chunk size).

    Every static point uses one chunk size (the smallest default, the caller's, or the store's
    when resuming) so that each engine chunk is exactly one zarr chunk.
    """
    from lazyrich.core.store import SweepStore, stored_description

    n_batched = shapes["diverged"][1]
    if chunk_size is None and os.path.isdir(path):
        try:
            chunk_size = stored_description(path)["chunk_size"]
        except ValueError:
            chunk_size = None
    size = min(chunk_size or min(entry[2] for entry in layout), n_batched)
    layout = [(s, static, size, group if group is not None and group < size else None)
              for s, static, _, group in layout]
    full_shapes = {"diverged": shapes["diverged"]}
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"store={os.fspath(path)!r} cannot be created: {parent!r} is not an "
                         f"existing directory")
    for _, static, _, _ in layout:
        one_run = make_run_one(grid.experiment, static, ntk_steps)
        example = chunk_inputs(grid, grid.batched_columns(), np.zeros(size, dtype=int))
        logged, once, _, at_ntk = jax.eval_shape(jax.vmap(one_run), example)
        for k, v in {**logged, **once, **at_ntk}.items():
            shape = shapes[k] + tuple(v.shape[len(shapes[k]) - 1:])
            if full_shapes.setdefault(k, shape) != shape:
                raise ValueError(f"store={os.fspath(path)!r}: output {k!r} changes shape across "
                                 f"the static axes ({full_shapes[k]} vs {shape}); sweep those "
                                 f"axes into separate stores")
    description = {**grid.config(), "chunk_size": int(size),
                   "dtype": str(np.dtype(jnp.result_type(float))), "ntk_steps": list(ntk_steps)}
    return SweepStore(path, description, full_shapes, versions(), overwrite), layout
