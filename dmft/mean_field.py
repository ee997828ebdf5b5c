"""The N -> infinity grokking dynamics at finite D, solved as gradient-flow ODEs (diffrax).

With fixed readouts, the infinite-width network of `lazyrich.sweep("grokking",
dynamics="infinite")` is a closed system for the deviations of the neuron population's moments
(dm, dS, dC) from m_0 = 0, S_0 = init_scale^2 I (`dmft/README.md`, "The exact N -> infinity
dynamics the mean-field theory starts from"; `lazyrich.experiments.grokking_model.moments_flow`).
The engine steps it as discrete gradient descent, one step per lr_scale of time; here the
gradient flow (the lr_scale -> 0 limit of the same map) is integrated with diffrax's adaptive,
error-controlled Tsit5. The system is not stiff: its Jacobian's eigenvalues are O(1/D) (the
linear kernel 2 X^T X / (P D) and the slower feature-learning rates; at D = 40, P = 200 the
largest is 0.11 per unit time), so the solver takes steps of tens of time units where gradient
descent at lr_scale = 0.5 takes 0.5, and a run costs about a thousand right-hand-side
evaluations instead of `steps` gradient-descent steps. Data, teacher and outputs are the
experiment's own: `sweep` takes the keyword arguments of `lazyrich.sweep("grokking", ...)` and
returns the same variables on the same dims and `time` coordinate (time = step x lr_scale; the
ODE solution is read at the logged steps' times from the solver's dense output), vmapped over
the swept points.
"""

from __future__ import annotations

import functools
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from lazyrich.core.checks import format_bytes, require_memory
from lazyrich.core.chunks import chunk_inputs
from lazyrich.core.devices import matmul_precision_context
from lazyrich.core.grid import Grid, make_grid
from lazyrich.core.labels import flat_to_dataset
from lazyrich.experiments import grokking_model as model
from lazyrich.experiments.grokking import GROKKING

DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-7
STAGES = 6  # new vector-field evaluations per Tsit5 step (first-same-as-last), accepted or not
REFUSED = {"train_readout": True, "linearized": True, "online": True}


def _max_norm(tree) -> jax.Array:
    return jnp.max(jnp.stack([jnp.max(jnp.abs(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]))


def _check_options(rtol, atol, max_steps) -> None:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name}={value!r} is not allowed; {name} must be a finite real "
                             f"number > 0")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int)
                                  or max_steps < 1):
        raise ValueError(f"max_steps={max_steps!r} is not allowed; max_steps must be None or an "
                         f"integer >= 1")


def _check_grid(grid: Grid) -> None:
    for axis in grid.axes:
        if axis.name == "dynamics" and set(axis.values) != {"infinite"}:
            raise ValueError(f"dynamics={list(axis.values)!r}: dmft.mean_field solves the "
                             f"N -> infinity dynamics only; give dynamics='infinite' or leave it")
        if axis.name in REFUSED and REFUSED[axis.name] in axis.values:
            raise ValueError(f"{axis.name}={list(axis.values)!r}: dmft.mean_field needs "
                             f"{axis.name}=False")
    if grid.scalars.get("dynamics", "infinite") != "infinite":
        raise ValueError(f"dynamics={grid.scalars['dynamics']!r}: dmft.mean_field solves the "
                         f"N -> infinity dynamics only; give dynamics='infinite' or leave it")
    for name, refused in REFUSED.items():
        if name in grid.scalars and grid.scalars[name] == refused:
            raise ValueError(f"{name}={refused!r}: dmft.mean_field needs {name}=False (the "
                             f"moment reduction closes only for fixed readouts and one "
                             f"training set)")


def _solve_one(static: dict, max_steps: int):
    """(batched parameters of one run, rtol, atol) -> (curves (n_log + 1,) each, diverged,
    solver statistics). The tolerances are traced, so changing them does not recompile."""
    n_log = static["steps"] // static["log_every"]

    def solve(batched: dict, rtol: jax.Array, atol: jax.Array):
        p = {**static, **batched}
        state0 = GROKKING.init(jax.random.key(p["seed"]), p)
        data, initial = state0["data"], state0["initial"]
        x, y = data["x_train"], data["y_train"]

        def vector_field(t, deviation, args):
            residual = model.moments_centred_output(deviation, x, p["alpha"], p["eps"]) - y
            return model.moments_flow(deviation, initial, residual, x, p["alpha"], p["eps"])

        def observe(t, deviation, args):
            return GROKKING.metrics({**state0, "deviation": deviation}, p)

        ts = jnp.arange(n_log + 1, dtype=x.dtype) * (static["log_every"] * p["lr_scale"])
        controller = diffrax.PIDController(rtol=rtol, atol=atol, norm=_max_norm)
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(vector_field), diffrax.Tsit5(), t0=ts[0], t1=ts[-1], dt0=None,
            y0=state0["deviation"], saveat=diffrax.SaveAt(ts=ts, fn=observe),
            stepsize_controller=controller, max_steps=max_steps, throw=False,
            adjoint=diffrax.ForwardMode())
        curves = solution.ys
        bad = ~jnp.isfinite(curves[GROKKING.loss])
        bad = bad | (solution.result != diffrax.RESULTS.successful)
        bad = jnp.cumsum(bad) > 0
        curves = {k: jnp.where(bad, jnp.nan, v) for k, v in curves.items()}
        stats = {k: solution.stats[k] for k in ("num_steps", "num_accepted_steps",
                                                "num_rejected_steps")}
        return curves, bad[-1], stats

    return solve


@functools.lru_cache(maxsize=32)
def _compiled(static_items: tuple, max_steps: int):
    """jit(vmap(solve one run)) for one static point, cached across calls."""
    return jax.jit(jax.vmap(_solve_one(dict(static_items), max_steps), in_axes=(0, None, None)))


def _estimate_bytes(static: dict, n_runs: int) -> int:
    """Peak bytes of a vmapped solve: per run the data, about 12 copies of the state (stages,
    error, controller) and the saved curves."""
    dim = static["D"]
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    data = (static["P"] + static["n_test"]) * (dim + 1) + dim
    state = 12 * (2 * dim * dim + dim) + dim * dim
    curves = 16 * (static["steps"] // static["log_every"] + 1)
    return n_runs * (data + state + curves) * itemsize


def sweep(*, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
          max_steps: int | None = None, **params) -> xr.Dataset:
    """Solve the N -> infinity grokking dynamics as gradient-flow ODEs over a sweep grid.

    Args:
        rtol, atol: relative and absolute local error tolerances of the step-size controller
            (max norm over all components of (dm, dS, dC)).
        max_steps: most solver steps per run (default 64 per logged interval + 4,096); a run
            that needs more is marked `diverged` with NaN curves from where it stopped.
        **params: the keyword arguments of `lazyrich.sweep("grokking", ...)` (alpha, eps,
            lr_scale, init_scale, D, P, n_test, degree, target, seed, steps, log_every, ...):
            a list / tuple / range / 1-d array is a sweep axis, a scalar fixes the parameter.
            `dynamics` may only be "infinite" (the default here); `N` is accepted and has no
            effect; trained readouts, `linearized` and `online` are refused.

    Returns:
        the Dataset `lazyrich.sweep("grokking", dynamics="infinite", ...)` returns for these
        parameters (same variables, dims, `step` and `time` = step x lr_scale coordinates,
        data and teacher drawn from the same seeds), with the gradient-flow values at the
        logged times, and in `attrs`: `method` = "mean_field", `solver`, `rtol`, `atol` and the
        solver's statistics summed over runs (`solver_steps`, `solver_accepted_steps`,
        `solver_rejected_steps`, `rhs_evaluations`: 6 per step, accepted or rejected, plus 1
        per run) and `max_rhs_evaluations`, the most any run needed.

    Raises:
        ValueError / TypeError: a bad parameter (as `lazyrich.sweep`), another dynamics, a bad
            tolerance; MemoryEstimateError when a static point's vmapped solve would not fit.
    """
    _check_options(rtol, atol, max_steps)
    params = dict(params)
    params.setdefault("dynamics", "infinite")
    grid = make_grid(GROKKING, params)
    _check_grid(grid)
    n_log = grid.scalars["steps"] // grid.scalars["log_every"]
    max_steps = max_steps or 64 * n_log + 4096
    columns = grid.batched_columns()
    n_batched = int(np.prod([len(a.values) for a in grid.batched_axes], dtype=np.int64))
    batched = chunk_inputs(grid, columns, np.arange(n_batched))
    static_points = list(grid.static_points())
    outputs = GROKKING.active_outputs(grid.scalars)
    flat = {k: np.full((len(static_points), n_batched, n_log + 1), np.nan) for k in outputs}
    flat["diverged"] = np.zeros((len(static_points), n_batched), dtype=bool)
    totals = dict.fromkeys(("num_steps", "num_accepted_steps", "num_rejected_steps"), 0)
    most = 0
    started = time.perf_counter()
    for s, (_, static) in enumerate(static_points):
        estimate = _estimate_bytes(static, n_batched)
        require_memory(estimate, f"dmft.mean_field.sweep of {n_batched} runs at D={static['D']}, "
                       f"P={static['P']} ({format_bytes(estimate)})",
                       "sweep fewer batched values at once or lower D / P / n_test")
        solve = _compiled(tuple(sorted(static.items())), max_steps)
        with matmul_precision_context("float32"):   # not JAX's TF32 default on GPUs
            curves, diverged, stats = jax.device_get(solve(batched, rtol, atol))
        for k in outputs:
            flat[k][s] = curves[k]
        flat["diverged"][s] = diverged
        for k in totals:
            totals[k] += int(np.sum(stats[k]))
        most = max(most, int(np.max(stats["num_steps"])))
    ds = flat_to_dataset(grid, flat, (), time.perf_counter() - started)
    n_runs = len(static_points) * n_batched
    ds.attrs.update({
        "method": "mean_field",
        "solver": "diffrax Tsit5 + PIDController (max norm), dense output at the log times",
        "rtol": float(rtol), "atol": float(atol),
        "solver_steps": totals["num_steps"],
        "solver_accepted_steps": totals["num_accepted_steps"],
        "solver_rejected_steps": totals["num_rejected_steps"],
        "rhs_evaluations": totals["num_steps"] * STAGES + n_runs,
        "max_rhs_evaluations": most * STAGES + 1,
    })
    return ds
