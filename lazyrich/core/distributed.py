"""Running a sweep's chunks as Ray tasks, on one machine or a cluster.

Each chunk of runs (one static configuration, up to `chunk_size` runs) is one Ray task. A worker
compiles once per static configuration and reuses the compilation for every later chunk it gets
(the engine's compilation cache lives in the worker process). Results come back as numpy arrays
and are yielded as they finish, so the engine can stream them into a store; a task whose worker
dies is retried (`max_retries`). `jax.distributed` is not used: it suits one giant computation,
and one dead process would stop every run.

    ray start --head                          # on the head machine; `ray start --address=...`
    lazyrich.sweep(..., executor="auto")      # on the workers; then from any machine
"""

from __future__ import annotations

import jax
import numpy as np

MAX_RETRIES = 3


def _task(experiment_name: str, grid_config: dict, job, ntk_steps, enable_x64: bool):
    """Body of one Ray task: rebuild the grid from its configuration and compute one chunk."""
    jax.config.update("jax_enable_x64", enable_x64)
    from lazyrich.core.chunks import compute_chunk
    from lazyrich.core.grid import make_grid
    from lazyrich.experiments.base import get_experiment

    experiment = get_experiment(experiment_name)
    grid = make_grid(experiment, {**grid_config["axes"], **grid_config["parameters"]})
    return compute_chunk(experiment, grid, grid.batched_columns(), job, ntk_steps)


def ray_chunks(experiment, grid, columns, jobs, ntk_steps, address: str | None = None):
    """Yield (job, values) for every job, computed as Ray tasks, in completion order."""
    try:
        import ray
    except ImportError:
        raise ValueError("executor='ray' needs Ray: pip install 'lazyrich[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(max_retries=MAX_RETRIES, num_cpus=1)(_task)
    enable_x64 = bool(jax.config.jax_enable_x64)
    config = grid.config()
    pending = {remote.remote(experiment.name, config, job, ntk_steps, enable_x64): job
               for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        values = ray.get(done[0])
        yield job, {k: np.asarray(v) for k, v in values.items()}
