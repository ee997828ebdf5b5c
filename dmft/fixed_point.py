"""Fixed-point iteration over whole trajectories (Anderson-accelerated or damped), with visible
progress and an honest end.

A DMFT is solved by iterating a map F over the order parameters' whole time grid until the
curves stop changing (`dmft/grokking.py`, eq. G6-G10 of `dmft/README.md`). Plain damping,
x <- (1 - damping) x + damping F(x), converges linearly at the map's contraction rate; Anderson
mixing (type II, Walker & Ni 2011) combines the last `history` residuals f = F(x) - x by least
squares and reaches the same fixed point in fewer iterations (`history=0` is plain damping; the
history restarts when the residual jumps). The map, the mixing and the residual are one
compiled program per iteration; only the residual (one number) and the curves return to the
host. Each iteration can take minutes, so this loop reports the iteration, the
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
import jax.numpy as jnp
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
    """0.23 -> '0.2 s', 75 -> '75 s', 600 -> '10.0 min', 36000 -> '10.0 h'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _flatten(state) -> tuple[jax.Array, Callable]:
    """(batch, size) matrix of a pytree whose leaves all lead with the batch axis, and its
    inverse."""
    leaves, tree = jax.tree_util.tree_flatten(state)
    batch = leaves[0].shape[0]
    shapes = [leaf.shape for leaf in leaves]
    sizes = np.cumsum([int(np.prod(s[1:])) for s in shapes])[:-1]

    def unflatten(flat):
        parts = jnp.split(flat, sizes, axis=1)
        return jax.tree_util.tree_unflatten(tree, [p.reshape(s) for p, s in
                                                   zip(parts, shapes, strict=True)])

    return jnp.concatenate([leaf.reshape(batch, -1) for leaf in leaves], axis=1), unflatten


def anderson_mix(x, g, history, damping: float, regularization: float = 1e-10):
    """One Anderson (type II) step per batch row: x, g = F(x) (batch, size); history holds the
    last differences of iterates and residuals.

    With f = g - x and the stored differences dX, dF (batch, m, size) of earlier x and f,
    gamma = argmin |f - dF^T gamma| (Tikhonov-regularised normal equations, relative to the
    largest diagonal entry) and x_new = x + damping f - (dX + damping dF)^T gamma. Columns not
    yet filled are zero and drop out. m = 0 or an all-zero history is plain damping.

    Args:
        x, g: (batch, size) current iterate and its image.
        history: (dX, dF, x_previous, f_previous, filled) with dX, dF (batch, m, size),
            x_previous, f_previous (batch, size) and filled (batch,) booleans (whether the
            previous pair exists).
        damping: weight of the new residual (the mixing parameter beta).

    Returns:
        (x_new, new history).
    """
    dx_hist, df_hist, x_prev, f_prev, filled = history
    f = g - x
    new_dx = jnp.where(filled[:, None], x - x_prev, 0.0)
    new_df = jnp.where(filled[:, None], f - f_prev, 0.0)
    dx_hist = jnp.concatenate([new_dx[:, None], dx_hist[:, :-1]], axis=1)
    df_hist = jnp.concatenate([new_df[:, None], df_hist[:, :-1]], axis=1)
    gram = jnp.einsum("bis,bjs->bij", df_hist, df_hist)
    scale = jnp.max(jnp.diagonal(gram, axis1=1, axis2=2), axis=1)
    eye = jnp.eye(gram.shape[-1])
    # unused (zero) columns get a unit diagonal so the system stays regular and gamma = 0 there
    empty = jnp.diagonal(gram, axis1=1, axis2=2) == 0
    gram = gram + eye * (regularization * scale[:, None, None]
                         + jnp.where(empty, 1.0, 0.0)[:, :, None])
    gamma = jnp.linalg.solve(gram, jnp.einsum("bis,bs->bi", df_hist, f)[..., None])[..., 0]
    step = x + damping * f - jnp.einsum("bi,bis->bs", gamma, dx_hist + damping * df_hist)
    return step, (dx_hist, df_hist, x, f, jnp.ones_like(filled))


_PROGRAMS: dict = {}   # compiled iterations, by (step, curves, state layout, damping, history)


def _advance_program(step, curves, state, damping: float, history: int):
    """The jitted iteration (map, mixing, residual) for this step and state layout, built once
    per process: a solver whose `step` is itself cached (the same function object for the same
    shapes) compiles once for all its calls."""
    leaves, tree = jax.tree_util.tree_flatten(state)
    layout = (tree, tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves))
    key = (step, curves, layout, float(damping), int(history))
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    unflatten = _flatten(state)[1]

    @jax.jit
    def advance(flat, memory, previous, restart, args):
        new, outputs = step(unflatten(flat), *args)
        image = _flatten(new)[0]
        if history == 0:
            mixed = flat + damping * (image - flat)
        else:
            memory = jax.tree_util.tree_map(
                lambda leaf: jnp.where(restart, jnp.zeros_like(leaf), leaf), memory)
            mixed, memory = anderson_mix(flat, image, memory, damping)
        current = curves(outputs)
        scale = jnp.max(jnp.abs(current), axis=-1, keepdims=True)
        change = jnp.max(jnp.abs(current - previous) / scale)
        return mixed, memory, outputs, current, change

    if len(_PROGRAMS) >= 64:
        _PROGRAMS.clear()
    _PROGRAMS[key] = advance
    return advance


def iterate_to_fixed_point(step: Callable[..., tuple[Any, dict]], state: Any,
                           curves: Callable[[dict], Any], *, damping: float, tol: float,
                           max_iter: int, progress: bool, what: str, knobs: str,
                           history: int = 0, args: tuple = ()):
    """Iterate the map `step` from `state` to its fixed point, Anderson-accelerated.

    Args:
        step: one application of the map, step(state, *args) -> (new state, outputs);
            traceable by jax.jit. Pass fixed inputs through `args` rather than a new closure:
            the compiled iteration is kept per (step, curves, state layout, damping, history)
            and reused by later calls with the same ones.
        state: the starting pytree; every leaf's leading axis indexes independent problems
            (the batch), mixed separately.
        curves: the outputs' curves whose largest change between iterations, relative to their
            scale, is the residual (an array (..., n_time)); traceable.
        damping: weight of the new residual (plain damping: of the new iterate).
        tol, max_iter: stopping tolerance and iteration cap.
        progress: show a bar with the iteration, the residual and the estimated time left.
        what: the solver's name in messages; knobs: what to change when it does not converge.
        history: number of earlier residuals Anderson mixing uses (0: plain damping).
        args: arrays passed to `step` after the state (arguments of the compiled program).

    Returns:
        (state, outputs of the last step, iterations, residual). Warns ConvergenceWarning when
        max_iter is reached with residual > tol.
    """
    flat, unflatten = _flatten(state)
    batch, size = flat.shape
    depth = max(history, 1)
    memory = (jnp.zeros((batch, depth, size), flat.dtype),
              jnp.zeros((batch, depth, size), flat.dtype), flat, flat, jnp.zeros(batch, bool))

    advance = _advance_program(step, curves, state, damping, history)

    shape = jax.eval_shape(lambda s, a: curves(step(s, *a)[1]), state, args)
    current = jnp.zeros(shape.shape, shape.dtype)
    residual, iterations, residuals = math.inf, 0, []
    started = time.perf_counter()
    with tqdm(total=max_iter, unit="iter", desc=what, disable=not progress, leave=False) as bar:
        while iterations < max_iter and residual > tol:
            # a jump of the residual means the history misleads: restart it
            restart = len(residuals) >= 2 and residuals[-1] > 4 * residuals[-2]
            flat, memory, outputs, current, change = advance(flat, memory, current,
                                                             jnp.asarray(restart), args)
            if iterations > 0:
                residual = float(change)
                residuals.append(residual)
            iterations += 1
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
    return unflatten(flat), outputs, iterations, residual
