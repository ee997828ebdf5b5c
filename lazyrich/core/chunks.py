"""One chunk of runs: the compiled `jit(vmap(scan(step)))` program and its inputs.

A chunk is a block of runs of one static point (one set of shape-changing parameters). The run
function is pure in its batched parameters; `compute_chunk` pads the chunk to its compiled shape,
shards its batch axis over the local devices and returns numpy arrays. The engine calls it in
this process; `lazyrich.core.distributed` calls it inside Ray tasks.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lazyrich.core import ntk_steps as at_steps
from lazyrich.core import progress
from lazyrich.core.devices import DEFAULT_MATMUL_PRECISION, matmul_precision_context
from lazyrich.core.grid import Grid
from lazyrich.experiments.base import Experiment


def make_run_one(experiment: Experiment, static: Mapping[str, Any],
                  ntk_steps: tuple[int, ...] = ()):
    """One run as a pure function of its batched parameters (a dict of traced scalars).

    Costly metrics are computed at `ntk_steps` (validated logged steps; see
    `lazyrich.core.ntk_steps`).
    """
    n_log = static["steps"] // static["log_every"]
    loss = experiment.loss

    def mask(logged, diverged):
        return {k: jnp.where(diverged, jnp.nan, v) for k, v in logged.items()}

    def run_one(batched: dict[str, jax.Array]):
        params = {**static, **batched}
        state0 = experiment.init(jax.random.key(params["seed"]), params)
        once = experiment.run_metrics(state0, params) if experiment.run_metrics else {}
        costly = at_steps.evaluator(experiment, state0, params)

        def inner(state, _):
            return experiment.step(state, params), None

        def outer(carry, flag):
            state, diverged = carry
            state, _ = lax.scan(inner, state, None, length=static["log_every"])
            logged = experiment.metrics(state, params)
            diverged = diverged | ~jnp.isfinite(logged[loss])
            jax.debug.callback(progress.report, static["log_every"], diverged)
            return (state, diverged), (mask(logged, diverged), mask(costly(state, flag), diverged))

        logged0 = experiment.metrics(state0, params)
        diverged0 = ~jnp.isfinite(logged0[loss])
        flags = at_steps.log_flags(ntk_steps, n_log, static["log_every"])
        (_, diverged), (logged, costly_logged) = lax.scan(outer, (state0, diverged0), flags)
        curves = {k: jnp.concatenate([v[None], logged[k]]) for k, v in
                  mask(logged0, diverged0).items()}
        costly0 = mask(costly(state0, 0 in ntk_steps), diverged0)
        at_ntk_steps = at_steps.select(costly0, costly_logged, ntk_steps, static["log_every"])
        return curves, once, diverged, at_ntk_steps

    return run_one


@functools.lru_cache(maxsize=64)
def compiled_runner(experiment: Experiment, static_items: tuple, dtype: str,
                     vmap_size: int | None, ntk_steps: tuple[int, ...] = ()):
    """jit(vmap(run_one)) for one static point and float dtype, cached across sweeps.

    With `vmap_size`, groups of that many runs are vmapped and the groups follow one another
    in a `lax.map` inside the same compiled program (no Python loop).
    """
    run_one = make_run_one(experiment, dict(static_items), ntk_steps)
    if vmap_size is None:
        return jax.jit(jax.vmap(run_one))
    return jax.jit(lambda inputs: lax.map(run_one, inputs, batch_size=vmap_size))


def _batched_dtype(kind: str):
    return jnp.result_type(float) if kind == "float" else jnp.result_type(int)


def _sharding() -> NamedSharding:
    """The batch axis of a chunk split over every local device."""
    return NamedSharding(Mesh(np.array(jax.local_devices()), ("runs",)), PartitionSpec("runs"))


def padded_size(size: int) -> int:
    """A chunk of `size` runs padded to a multiple of the local device count."""
    devices = jax.local_device_count()
    return -(-size // devices) * devices


@functools.lru_cache(maxsize=64)
def chunk_program(experiment: Experiment, static_items: tuple, dtype: str,
                  vmap_size: int | None, ntk_steps: tuple[int, ...],
                  input_types: tuple[tuple[str, str], ...], size: int,
                  matmul_precision: str = DEFAULT_MATMUL_PRECISION):
    """The compiled (ahead of time) program for one chunk shape.

    Compiling before running lets the engine read the program's own memory needs
    (`program_bytes`) and refuse a chunk that would not fit before anything is allocated.
    `input_types` are (parameter name, dtype) pairs of the batched inputs, each of shape (size,).
    The program is traced under `jax.default_matmul_precision` for `matmul_precision`.
    """
    group = vmap_size if jax.local_device_count() == 1 else None
    runner = compiled_runner(experiment, static_items, dtype, group, ntk_steps)
    sharding = _sharding()
    shapes = {name: jax.ShapeDtypeStruct((size,), np.dtype(kind), sharding=sharding)
              for name, kind in input_types}
    with matmul_precision_context(matmul_precision):
        return runner.lower(shapes).compile()


def program_bytes(program) -> int:
    """Peak device bytes of a compiled program: its arguments, outputs and temporaries."""
    stats = program.memory_analysis()
    if stats is None:  # a backend without the analysis: count nothing rather than guess
        return 0
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               + stats.temp_size_in_bytes)


def program_for(grid: Grid, columns: dict, static_items: tuple, vmap_size: int | None,
                size: int, ntk_steps: tuple[int, ...],
                matmul_precision: str = DEFAULT_MATMUL_PRECISION):
    """The compiled program for chunks of `size` runs of one static point."""
    example = chunk_inputs(grid, columns, np.zeros(1, dtype=int))
    input_types = tuple(sorted((name, str(value.dtype)) for name, value in example.items()))
    return chunk_program(grid.experiment, static_items, str(jnp.result_type(float)), vmap_size,
                         ntk_steps, input_types, padded_size(size), matmul_precision)


def chunk_inputs(grid: Grid, columns: dict[str, np.ndarray], index: np.ndarray) -> dict:
    """Batched parameter arrays for the runs `index` (swept and constant ones alike)."""
    params = grid.experiment.parameters
    inputs = {}
    for name, values in columns.items():
        inputs[name] = jnp.asarray(values[index], _batched_dtype(params[name].kind))
    for name, value in grid.batched_scalars().items():
        inputs[name] = jnp.full(index.shape, value, _batched_dtype(params[name].kind))
    return inputs


class ChunkJob(NamedTuple):
    """One chunk of runs: which static point and chunk, its static parameters and its runs."""

    static_index: int
    chunk_index: int
    static_items: tuple
    vmap_size: int | None
    index: np.ndarray
    size: int
    matmul_precision: str = DEFAULT_MATMUL_PRECISION


def compute_chunk(experiment: Experiment, grid: Grid, columns: dict, job: ChunkJob,
                  ntk_steps: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Run one chunk on this process's devices; name -> (runs in chunk, ...) numpy arrays.

    The chunk is padded to `job.size` rounded up to a multiple of the local device count, and
    its batch axis is sharded over all local devices (GSPMD).
    """
    program = program_for(grid, columns, job.static_items, job.vmap_size, job.size, ntk_steps,
                          job.matmul_precision)
    size = padded_size(job.size)
    padded = np.concatenate([job.index, np.full(size - len(job.index), job.index[-1])])
    logged, once, bad, at_ntk = program(jax.device_put(chunk_inputs(grid, columns, padded),
                                                       _sharding()))
    values = {k: np.asarray(v)[: len(job.index)]
              for part in (logged, once, at_ntk) for k, v in part.items()}
    values["diverged"] = np.asarray(bad)[: len(job.index)]
    return values


