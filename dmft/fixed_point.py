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

For a causal map (given `horizon=`, the time index of every state entry) two fallbacks keep a
long run from failing: a blow-up of the whole-grid iteration restarts it in growing time
windows (the early times settle first and the late ones start from them), and a limit cycle of
the damped iteration halves the damping. Both change the path, not the fixed point; where the
plain iteration converges they stay out of the way.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dmft.checkpoint import Checkpoint


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


def _flat(state) -> jax.Array:
    """(batch, size) matrix of a pytree whose leaves all lead with the batch axis
    (traceable)."""
    leaves = jax.tree_util.tree_leaves(state)
    return jnp.concatenate([leaf.reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


def _unflattener(state) -> Callable:
    """The inverse of `_flat` for pytrees shaped like `state` (only its shapes are read)."""
    leaves, tree = jax.tree_util.tree_flatten(state)
    shapes = [leaf.shape for leaf in leaves]
    sizes = np.cumsum([int(np.prod(s[1:])) for s in shapes])[:-1]

    def unflatten(flat):
        parts = jnp.split(flat, sizes, axis=1)
        return jax.tree_util.tree_unflatten(tree, [p.reshape(s) for p, s in
                                                   zip(parts, shapes, strict=True)])

    return unflatten


def _zeros(shape, dtype) -> jax.Array:
    """Zeros copied from the host (an eager jnp.zeros compiles a program per shape)."""
    return jax.device_put(np.zeros(shape, dtype))


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


_PROGRAMS: dict = {}   # compiled iterations, by (step, curves, state layout, history)

# a relative change of the curves this close to 1 means they grew by orders of magnitude in
# one iteration: twice in a row (or a non-finite residual) is a blow-up, not a transient
BLOWING_UP = 0.98
STALLED_AFTER = 20      # the residual's peak must fall by 10% from one such stretch to the next
SMALLEST_DAMPING = 0.05


def _verdict(residuals: list[float], turns: list[float]) -> str:
    """'diverged', 'stalled' or 'ok' for the residuals (and the cosines between successive
    changes of the curves) since the current time window started (the first residual inf).

    Diverged: the last residual is non-finite, or the last two are above BLOWING_UP (a single
    jump is a transient that the iteration usually recovers from). Stalled: the largest of
    the last STALLED_AFTER residuals is above 0.9 times the largest of the STALLED_AFTER before
    them, and the iteration overshoots: the residual rose in a quarter of those steps (a limit
    cycle) or successive changes point against each other on average (a negative eigenvalue).
    A slow monotone crawl is 'ok': smaller steps would only slow it further."""
    if len(residuals) < 2:
        return "ok"
    measured = residuals[1:]
    if not math.isfinite(measured[-1]) or (len(measured) >= 2
                                           and min(measured[-2:]) > BLOWING_UP):
        return "diverged"
    if len(residuals) <= 2 * STALLED_AFTER:
        return "ok"
    recent, earlier = residuals[-STALLED_AFTER:], residuals[-2 * STALLED_AFTER:-STALLED_AFTER]
    if max(recent) <= 0.9 * max(earlier):
        return "ok"
    stretch = residuals[-2 * STALLED_AFTER:]
    rises = sum(b > a for a, b in zip(stretch[:-1], stretch[1:], strict=True))
    overshoot = float(np.mean(turns[-STALLED_AFTER:])) < 0
    return "stalled" if rises >= STALLED_AFTER // 2 or overshoot else "ok"


def _advance_program(step, curves, state, history: int):
    """The jitted iteration (map, mixing, residual) for this step and state layout, built once
    per process: a solver whose `step` is itself cached (the same function object for the same
    shapes) compiles once for all its calls.

    Only the state's entries whose time index is below `front` move (the rest keep their
    values), and the residual is measured on the curves' first `front` times: with
    front >= n_time this is the plain iteration."""
    leaves, tree = jax.tree_util.tree_flatten(state)
    layout = (tree, tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves))
    key = (step, curves, layout, int(history))
    if key in _PROGRAMS:
        return _PROGRAMS[key]
    unflatten = _unflattener(state)

    @jax.jit
    def advance(flat, memory, previous, before, restart, args, time_index, front, damping):
        new, outputs = step(unflatten(flat), *args)
        active = time_index < front
        image = jnp.where(active, _flat(new), flat)
        if history == 0:
            mixed = flat + damping * (image - flat)
        else:
            memory = jax.tree_util.tree_map(
                lambda leaf: jnp.where(restart, jnp.zeros_like(leaf), leaf), memory)
            mixed, memory = anderson_mix(flat, image, memory, damping)
        mixed = jnp.where(active, mixed, flat)
        current = curves(outputs)
        window = jnp.arange(current.shape[-1]) < front
        scale = jnp.max(jnp.where(window, jnp.abs(current), 0.0), axis=-1, keepdims=True)
        step_now = jnp.where(window, current - previous, 0.0)
        step_before = jnp.where(window, previous - before, 0.0)
        change = jnp.max(jnp.abs(step_now) / scale)
        # cosine between this change of the curves and the last: < 0 when they overshoot
        turn = jnp.vdot(step_now, step_before) / jnp.maximum(
            jnp.linalg.norm(step_now) * jnp.linalg.norm(step_before), 1e-300)
        return mixed, memory, outputs, current, change, turn

    if len(_PROGRAMS) >= 64:
        _PROGRAMS.clear()
    _PROGRAMS[key] = advance
    return advance


def _flat_time_index(horizon, state) -> tuple[jax.Array, int]:
    """(size,) time index of every flattened state entry (the batch shares it) and the number
    of time points; without a horizon (zeros, the largest int32: every entry and every time of
    the curves is active)."""
    leaves = jax.tree_util.tree_leaves(state)
    if horizon is None:
        size = sum(int(np.prod(leaf.shape[1:])) for leaf in leaves)
        return _zeros(size, np.int32), int(np.iinfo(np.int32).max)
    indices = jax.tree_util.tree_leaves(horizon)
    if len(indices) != len(leaves):
        raise ValueError(f"horizon has {len(indices)} leaves; the state has {len(leaves)}")
    flat = np.concatenate([np.broadcast_to(np.asarray(index), leaf.shape[1:]).ravel()
                           for index, leaf in zip(indices, leaves, strict=True)])
    return jax.device_put(flat.astype(np.int32)), int(flat.max()) + 1


def iterate_to_fixed_point(step: Callable[..., tuple[Any, dict]], state: Any,
                           curves: Callable[[dict], Any], *, checkpoint: Checkpoint | None = None,
                           **settings):
    """Iterate the map `step` from `state` to its fixed point, Anderson-accelerated.

    Args:
        step: one application of the map, step(state, *args) -> (new state, outputs);
            traceable by jax.jit. Pass fixed inputs through `args` rather than a new closure:
            the compiled iteration is kept per (step, curves, state layout, history)
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
        horizon: for a causal map (the state up to time k determines the outputs up to k), a
            pytree like `state`, each leaf an integer array broadcastable to its leaf's shape
            without the batch axis: the latest time index the entry belongs to. When the
            whole-grid iteration diverges (`_verdict`), it restarts from `state` on the first
            half of the times and extends a window that has settled (residual < 1e-2) by
            doubling it (halving an extension that diverges again); when the damped
            iteration overshoots without converging (a limit cycle, `_verdict`) it halves the
            damping (down to SMALLEST_DAMPING): the same fixed point, reached in time windows
            and smaller steps. None: neither fallback.
        checkpoint: a `dmft.checkpoint.Checkpoint`: the iterate is written there every
            `checkpoint.every_seconds` and at the end, and an iteration finding one there
            starts from it (its iterations count on; max_iter more are allowed); None: none.
        return_state: False returns None for the state (a caller that needs only the
            outputs skips compiling the unflattening).

    Returns:
        (state, outputs of the last step, iterations, residual). Warns ConvergenceWarning when
        max_iter is reached with residual > tol (residual inf if the windows had not yet
        reached the last time); residual nan when the iteration diverged (no fallback, or no
        time window short enough converges).
    """
    with checkpoint.held() if checkpoint is not None else contextlib.nullcontext():
        return _iterate(step, state, curves, checkpoint=checkpoint, **settings)


def _iterate(step, state, curves, *, damping: float, tol: float, max_iter: int, progress: bool,
             what: str, knobs: str, history: int = 0, args: tuple = (), horizon: Any = None,
             return_state: bool = True, checkpoint: Checkpoint | None = None):
    """`iterate_to_fixed_point` with its checkpoint's lock held."""
    # one compiled program each way (eagerly, every reshape would compile one of its own)
    flat = jax.jit(_flat)(state)
    batch, size = flat.shape
    depth = max(history, 1)

    def fresh_memory(start):
        return (_zeros((batch, depth, size), flat.dtype), _zeros((batch, depth, size),
                                                                  flat.dtype), start, start,
                _zeros(batch, bool))

    memory = fresh_memory(flat)
    advance = _advance_program(step, curves, state, history)
    time_index, n_time = _flat_time_index(horizon, state)

    shape = jax.eval_shape(lambda s, a: curves(step(s, *a)[1]), state, args)
    current = before = _zeros(shape.shape, shape.dtype)
    residual, iterations, residuals, turns = math.inf, 0, [], []
    front, converged = n_time, (flat, 0)     # active window; last converged (state, front)
    window_tol = max(tol, 1e-2)     # a window need not be converged before the next one
    initial_damping = damping
    saved = checkpoint.load(batch, size) if checkpoint is not None else None
    if saved is not None:       # start where the checkpoint's iteration stopped
        flat = jax.device_put(saved["flat"].astype(flat.dtype))
        memory, front, iterations = fresh_memory(flat), saved["front"], saved["iterations"]
        # the curves of the saved iterate: the first iteration measures its residual
        current = before = jax.device_put(saved["curves"].astype(shape.dtype))
        if math.isfinite(saved["residual"]):
            residuals, turns = [saved["residual"]], [0.0]
        settled = flat if saved["settled"] is None else jax.device_put(
            saved["settled"].astype(flat.dtype))
        converged = (settled, saved["settled_front"])
        if damping == saved["initial_damping"]:
            damping = saved["damping"]       # smaller after limit cycles
    first = iterations

    def snapshot():
        """The loop's variables where they agree (an iterate with its own curves)."""
        return (flat, current, residuals[-1] if residuals else math.inf, front, converged,
                damping, iterations)

    def save():
        iterate, curves_, last, front_, (settled, done), damping_, count = kept
        if checkpoint is not None and bool(jnp.all(jnp.isfinite(iterate))):
            checkpoint.save(iterate, curves_, settled if front_ < n_time else None,
                            iterations=count, damping=float(damping_), residual=last,
                            initial_damping=float(saved["initial_damping"] if saved else
                                                  initial_damping),
                            front=int(front_), settled_front=int(done))

    # saved with the residual only where one was measured (a restarted window pairs the
    # settled iterate with another iterate's curves: its residual list is empty then)
    kept = snapshot()

    saved_at = started = time.perf_counter()
    try:
        with tqdm(total=max_iter, unit="iter", desc=what, disable=not progress, leave=False) as bar:
            while iterations < first + max_iter and (residual > tol or front < n_time):
                # a jump of the residual means the history misleads: restart it
                restart = len(residuals) >= 2 and residuals[-1] > 4 * residuals[-2]
                previous = current
                image, memory, outputs, current, change, turn = advance(
                    flat, memory, current, before, np.bool_(restart), args, time_index,
                    np.int32(front), np.asarray(damping, flat.dtype))
                before = previous
                iterations += 1
                residual = float(change) if residuals else math.inf    # a window's first: none
                residuals.append(residual)
                turns.append(float(turn))
                verdict = _verdict(residuals, turns) if horizon is not None else "ok"
                if verdict == "diverged":
                    # back to the last converged window, extend it half as far
                    flat, done = converged
                    front = done + (front - done) // 2
                    if front <= done:
                        front, residual = n_time, math.nan       # no window converges: diverged
                        break
                    memory, residual, residuals, turns = fresh_memory(flat), math.inf, [], []
                else:
                    flat = image
                    if verdict == "stalled" and damping > SMALLEST_DAMPING:
                        # a limit cycle of the damped map: smaller steps
                        damping = max(SMALLEST_DAMPING, damping / 2)
                        memory, residuals, turns = fresh_memory(flat), [math.inf], [0.0]
                    if front < n_time and len(residuals) > 1 and residual <= window_tol:
                        converged = (flat, front)
                        front = 2 * front if 5 * front < 2 * n_time else n_time
                        memory, residual, residuals, turns = fresh_memory(flat), math.inf, [], []
                    elif not math.isfinite(residual) and len(residuals) > 1:
                        break
                per_iteration = (time.perf_counter() - started) / (iterations - first)
                window = f", times < {front}/{n_time}" if front < n_time else ""
                window += f", damping {damping:.3g}" if damping != initial_damping else ""
                left = format_seconds(_eta_seconds(residuals, tol, per_iteration))
                bar.set_postfix_str(f"residual {residual:.2e} (tol {tol:.0e}){window}, time "
                                    f"left ~{left}", refresh=False)
                bar.update(1)
                kept = snapshot()
                if checkpoint is not None and time.perf_counter() - saved_at > \
                        checkpoint.every_seconds:
                    save()
                    saved_at = time.perf_counter()
    except KeyboardInterrupt:      # ^C: keep what the iteration reached, then stop
        save()
        raise
    save()
    if front < n_time:
        residual = math.inf
    if residual > tol:
        reached = (f"; its time windows reached only the first {front} of {n_time} times"
                   if front < n_time else "")
        if damping != initial_damping:
            reached += f"; its damping fell to {damping:.3g} after limit cycles"
        if first:
            reached += f"; it went on from the {first} iterations of its checkpoint"
        warnings.warn(f"{what} stopped at max_iter={max_iter} with residual {residual:.3g} > "
                      f"tol={tol:g} (relative change of the train/test curves in the last "
                      f"iteration){reached}; the curves are not converged. Raise max_iter=, "
                      f"lower damping= if the residual oscillates, {knobs}, or loosen tol=",
                      ConvergenceWarning, stacklevel=3)
    return (jax.jit(_unflattener(state))(flat) if return_state else None, outputs, iterations,
            residual)
