"""Costly metrics (NTK, kernel alignment, ...) at steps the caller chooses: `sweep(ntk_steps=)`.

An experiment with an `ntk_metrics(state, reference, params)` function (and optionally
`ntk_reference(state0, params)`, computed once per run: e.g. the initial kernel, so it is not
recomputed at every chosen step) gets those metrics evaluated at `ntk_steps` (default: the first
and the last step) inside the compiled scan. Each chosen step must be a logged step (a multiple
of `log_every` in [0, steps]): the engine's outer scan visits exactly those, and at each it runs
`lax.cond` on a flag that is the same for every run (so under `vmap` only the chosen log points
pay for the computation). The values land in the Dataset with an `ntk_step` coordinate.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lazyrich.experiments.base import Experiment


def check_ntk_steps(experiment: Experiment, ntk_steps: Sequence[int] | None, steps: int,
                    log_every: int) -> tuple[int, ...]:
    """The validated, sorted steps at which `experiment.ntk_metrics` runs (() if it has none).

    Raises:
        ValueError: ntk_steps given to an experiment without costly metrics, empty, repeated,
            outside [0, steps], or not a multiple of log_every.
        TypeError: ntk_steps not a sequence of integers.
    """
    if experiment.ntk_metrics is None:
        if ntk_steps is not None:
            raise ValueError(f"ntk_steps={ntk_steps!r}: experiment {experiment.name!r} has no "
                             f"costly (ntk) metrics; leave ntk_steps out")
        return ()
    if ntk_steps is None:
        return (0, steps)
    allowed = (f"a list of distinct multiples of log_every={log_every} in [0, steps={steps}]")
    if isinstance(ntk_steps, str | bytes) or not isinstance(ntk_steps, Sequence | range
                                                            | np.ndarray):
        raise TypeError(f"ntk_steps={ntk_steps!r} has type {type(ntk_steps).__name__}; "
                        f"ntk_steps must be {allowed}")
    values = []
    for value in list(ntk_steps):
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
            raise TypeError(f"ntk_steps contains {value!r} ({type(value).__name__}); ntk_steps "
                            f"must be {allowed}")
        if not 0 <= value <= steps or value % log_every:
            raise ValueError(f"ntk_steps contains {value}, which is not a logged step; ntk_steps "
                             f"must be {allowed}")
        values.append(int(value))
    if not values or len(set(values)) != len(values):
        raise ValueError(f"ntk_steps={list(ntk_steps)!r} is empty or repeats a step; ntk_steps "
                         f"must be {allowed}")
    return tuple(sorted(values))


def log_flags(ntk_steps: tuple[int, ...], n_log: int, log_every: int) -> np.ndarray:
    """(n_log,) booleans: whether the outer scan's log point i (step (i + 1) log_every) is
    a chosen step. A constant, so the `lax.cond` it drives is not batched under `vmap`."""
    return np.isin((np.arange(n_log) + 1) * log_every, ntk_steps)


def evaluator(experiment: Experiment, state0, params: dict) -> Callable:
    """(state, flag) -> dict of costly metrics where flag is True, zeros where it is False.

    `flag` may be a Python bool (no branch is traced for False) or a traced scalar.
    """
    if experiment.ntk_metrics is None:
        return lambda state, flag: {}
    reference = (experiment.ntk_reference(state0, params) if experiment.ntk_reference
                 else state0)

    def compute(state):
        return experiment.ntk_metrics(state, reference, params)

    shapes = jax.eval_shape(compute, state0)

    def zeros(state):
        return jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def evaluate(state, flag):
        if isinstance(flag, bool | np.bool_):
            return compute(state) if flag else zeros(state)
        return lax.cond(flag, compute, zeros, state)

    return evaluate


def select(first: dict, later: dict, ntk_steps: tuple[int, ...], log_every: int) -> dict:
    """Values at the chosen steps, (n_ntk, ...), from step 0's and the scanned log points'."""
    index = np.asarray(ntk_steps, dtype=int) // log_every
    return {k: jnp.concatenate([v[None], later[k]])[index] for k, v in first.items()}
