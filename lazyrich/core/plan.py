"""Planning a sweep: runs per chunk and per vmap group, and whether the chunks fit in memory.

Chunk sizes start from a cheap estimate (a run's state from `jax.eval_shape`, times four for
gradients and temporaries); then each static point's chunk program is compiled ahead of time and
its own memory analysis (arguments + outputs + XLA temporaries) plus the results the sweep keeps
decide: an automatic chunk that does not fit is shrunk, and a sweep that cannot fit even so is
refused, before anything is allocated, with the estimate, the memory this process may use and
the parameter to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from lazyrich.core.checks import (
    MEMORY_FRACTION,
    MemoryEstimateError,
    available_memory_bytes,
    format_bytes,
)
from lazyrich.core.chunks import chunk_inputs, program_bytes, program_for
from lazyrich.core.devices import MemoryReport, cpu_cache_bytes
from lazyrich.core.grid import Grid
from lazyrich.measures.ntk import DEFAULT_JACOBIAN_ELEMENTS

RESULT_BYTES = 8  # the engine gathers results in float64 numpy arrays


def _state_bytes(grid: Grid, static: Mapping[str, Any]) -> int:
    """Bytes of one run's state (weights, data, ...), from shapes alone (nothing is run)."""
    experiment = grid.experiment
    example = chunk_inputs(grid, grid.batched_columns(), np.zeros(1, dtype=int))
    one = {k: v[0] for k, v in example.items()}

    def state_of(batched):
        return experiment.init(jax.random.key(batched["seed"]), {**static, **batched})

    leaves = jax.tree_util.tree_leaves(jax.eval_shape(state_of, one))
    return sum(leaf.size * leaf.dtype.itemsize for leaf in leaves)


def default_sizes(grid: Grid, static: Mapping[str, Any], n_batched: int, chunk_size,
                   vmap_size, memory_budget_bytes: int) -> tuple[int, int | None]:
    """(runs per chunk, runs per vmap group) when the caller leaves them to the engine.

    A chunk holds as many runs as fit the memory budget (state x4 for gradients and
    temporaries, plus logs). On CPUs, vmapping runs whose states outgrow the caches turns each
    matmul into a slower batched matmul (measured 1.5x slower per run at the paper's size), so
    runs are vmapped in groups whose state fills about one core's L2 cache
    (`devices.cpu_cache_bytes`); accelerators vmap the whole chunk.
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
        vmap_size = max(1, cpu_cache_bytes() // state_bytes)
    if vmap_size is not None and vmap_size >= chunk_size:
        vmap_size = None
    return chunk_size, vmap_size


def _output_shapes(program, shapes: dict) -> dict[str, tuple[int, ...]]:
    """Full flat shapes (static points, runs, [steps,] own dims) from a chunk program."""
    logged, once, _, at_ntk = program.out_info
    return {k: shapes[k] + tuple(v.shape[len(shapes[k]) - 1:])
            for k, v in {**logged, **once, **at_ntk}.items()}


def _results_bytes(full_shapes: dict) -> int:
    return sum(int(np.prod(shape, dtype=np.int64)) * RESULT_BYTES
               for shape in full_shapes.values())


def _shape_parameters(grid: Grid, static: Mapping[str, Any]) -> str:
    names = [k for k, spec in grid.experiment.parameters.items()
             if spec.static and spec.kind == "int" and k in static
             and k not in ("steps", "log_every")]
    return ", ".join(f"{k}={static[k]}" for k in names)


def fit_in_memory(grid: Grid, columns: dict, layout: list, fixed_chunk: bool,
                  ntk_steps: tuple[int, ...], shapes: dict, common_size: bool,
                  matmul_precision: str, memory: MemoryReport
                  ) -> tuple[list, dict[str, tuple[int, ...]]]:
    """Compile every static point's chunk program and check that the sweep fits in memory.

    Args:
        layout: (static index, static parameters, runs per chunk, vmap group) per static point.
        fixed_chunk: the caller chose the chunk size (never shrink it).
        shapes: output name -> (static points, runs[, log or ntk steps]).
        common_size: every static point must keep one chunk size (stores).
        matmul_precision: the programs' matmul precision (`devices.MATMUL_PRECISIONS`).
        memory: free memory of the devices the chunk programs run on. On CPU the programs and
            the gathered results share it; on an accelerator the results live on the host and
            are checked against the host's available memory.

    Returns:
        (layout with chunk sizes that fit, output name -> full flat shape).

    Raises:
        MemoryEstimateError: the sweep would not fit, naming what to change.
        ValueError: an output changes shape across static points while `common_size`.
    """
    allowed = MEMORY_FRACTION * memory.free_bytes
    shared = jax.default_backend() == "cpu" or "memory_stats" not in memory.source
    host_allowed = allowed if shared else MEMORY_FRACTION * available_memory_bytes()
    full_shapes = {"diverged": shapes["diverged"]}
    fitted, peak, peak_entry = [], 0, None
    for entry in layout:
        s, static, size, group = entry
        items = tuple(sorted(static.items()))
        program = program_for(grid, columns, items, group, size, ntk_steps, matmul_precision)
        chunk_bytes = program_bytes(program)
        if chunk_bytes > allowed and not fixed_chunk and size > 1:
            size = max(1, int(size * allowed / chunk_bytes))
            group = group if group is not None and group < size else None
            program = program_for(grid, columns, items, group, size, ntk_steps,
                                  matmul_precision)
            chunk_bytes = program_bytes(program)
        for k, shape in _output_shapes(program, shapes).items():
            if full_shapes.setdefault(k, shape) != shape:
                raise ValueError(f"output {k!r} changes shape across the static axes "
                                 f"({full_shapes[k]} vs {shape}); sweep those axes into "
                                 f"separate stores")
        if chunk_bytes >= peak:
            peak, peak_entry = chunk_bytes, (static, size)
        fitted.append((s, static, size, group))
    if common_size and len({entry[2] for entry in fitted}) > 1:
        size = min(entry[2] for entry in fitted)
        fitted = [(s, static, size, group if group is not None and group < size else None)
                  for s, static, _, group in fitted]
    results = _results_bytes(full_shapes)
    if not shared and results > host_allowed:
        raise MemoryEstimateError(
            f"sweep of {grid.experiment.name!r} ({grid.n_runs} runs) keeps "
            f"{format_bytes(results)} of results in host memory but this process can use "
            f"{format_bytes(host_allowed / MEMORY_FRACTION)}; raise log_every= (now "
            f"{grid.scalars['log_every']}) or split the grid into several sweeps")
    if peak + (results if shared else 0) > allowed:
        static, size = peak_entry
        if results > peak:
            remedy = (f"the results alone take {format_bytes(results)}: raise log_every= (now "
                      f"{grid.scalars['log_every']}) or split the grid into several sweeps")
        elif size > 1:
            remedy = f"lower chunk_size= (now {size}) or memory_budget_bytes="
        else:
            remedy = (f"a single run does not fit: lower its sizes "
                      f"({_shape_parameters(grid, static)})")
        raise MemoryEstimateError(
            f"sweep of {grid.experiment.name!r} ({grid.n_runs} runs, chunks of {size}) needs "
            f"about {format_bytes(peak + results)} ({format_bytes(peak)} for a chunk's "
            f"compiled program, {format_bytes(results)} for the results) but this process can "
            f"use {format_bytes(allowed / MEMORY_FRACTION)} ({memory.source}); {remedy}")
    return fitted, full_shapes
