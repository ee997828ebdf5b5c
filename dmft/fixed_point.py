"""Damped fixed-point iteration over whole trajectories, with visible progress and an honest end.

A DMFT is solved by iterating a map F over the order parameters' whole time grid,
x <- (1 - damping) x + damping F(x), until the curves stop changing (`dmft/grokking.py`, eq. G6-G10
of `dmft/README.md`). Each iteration can take minutes, so this loop reports the iteration, the
residual and an estimate of the time left (from the observed contraction rate), and when it
stops at `max_iter` without reaching `tol` it warns (`ConvergenceWarning`) with the residual
reached and the knobs that help, instead of returning unconverged curves silently.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm


class ConvergenceWarning(RuntimeWarning):
    """A fixed-point iteration stopped at its iteration cap before reaching its tolerance."""


def _eta_seconds(residuals: list[float], tol: float, seconds_per_iteration: float) -> float:
    """Time left if the residual keeps contracting at its latest rate (inf when it does not)."""
    if len(residuals) < 2 or residuals[-1] <= tol:
        return math.nan if len(residuals) < 2 else 0.0
    rate = residuals[-1] / residuals[-2]
    if not 0 < rate < 1 or tol <= 0:
        return math.inf
    return math.log(tol / residuals[-1]) / math.log(rate) * seconds_per_iteration


def format_seconds(seconds: float) -> str:
    """75 -> '75 s', 600 -> '10.0 min', 36000 -> '10.0 h'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def damped_iteration(step: Callable[[Any], tuple[Any, dict]], state: Any,
                     curves: Callable[[dict], np.ndarray], *, damping: float, tol: float,
                     max_iter: int, progress: bool, what: str, knobs: str):
    """Iterate `state <- (1 - damping) state + damping step(state)[0]` to a fixed point.

    Args:
        step: one application of the map: returns (new state, outputs).
        state: the starting pytree.
        curves: the outputs' curves whose largest change, relative to their scale, is the
            residual (an array (..., n_time)).
        damping, tol, max_iter: weight of the new iterate, stopping tolerance, iteration cap.
        progress: show a bar with the iteration, the residual and the estimated time left.
        what: the solver's name in messages; knobs: what to change when it does not converge.

    Returns:
        (state, outputs of the last step, iterations, residual). Warns ConvergenceWarning when
        max_iter is reached with residual > tol.
    """
    previous, residual, iterations, residuals = None, math.inf, 0, []
    started = time.perf_counter()
    with tqdm(total=max_iter, unit="iter", desc=what, disable=not progress, leave=False) as bar:
        while iterations < max_iter and residual > tol:
            new, outputs = step(state)
            state = jax.tree_util.tree_map(lambda old, upd: (1 - damping) * old + damping * upd,
                                           state, new)
            current = np.asarray(curves(outputs))
            if previous is not None:
                scale = np.max(np.abs(current), axis=-1, keepdims=True)
                residual = float(np.max(np.abs(current - previous) / scale))
                residuals.append(residual)
            previous, iterations = current, iterations + 1
            per_iteration = (time.perf_counter() - started) / iterations
            bar.set_postfix_str(f"residual {residual:.2e} (tol {tol:.0e}), time left ~"
                                f"{format_seconds(_eta_seconds(residuals, tol, per_iteration))}",
                                refresh=False)
            bar.update(1)
    if residual > tol:
        warnings.warn(f"{what} stopped at max_iter={max_iter} with residual {residual:.3g} > "
                      f"tol={tol:g} (relative change of the train/test curves in the last "
                      f"iteration); the curves are not converged. Raise max_iter=, lower "
                      f"damping= if the residual oscillates, {knobs}, or loosen tol=",
                      ConvergenceWarning, stacklevel=3)
    return state, outputs, iterations, residual
