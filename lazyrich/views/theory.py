"""Theory curves for a simulation Dataset: what `lazyrich compare` lays over the simulation.

The command line and the gallery are applications on top of both packages, so this view may
import `dmft`; the simulator's own modules never do.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


def teacher_scales(ds) -> list[float]:
    """b = |beta|^2 / D of the simulation's own teacher for each seed of the sweep.

    The teacher is re-drawn exactly as the run drew it (same key, same parameters), so the
    theory's target scale matches each seed (|beta|^2 / D scatters by sqrt(2 / D) around 1, and
    the loss plateau scales as b^2)."""
    import jax

    from lazyrich.experiments import get_experiment

    experiment = get_experiment("grokking")
    # the teacher is cut from one normal draw whose layout is set by these sizes
    fixed = {k: int(ds.attrs[k]) for k in ("D", "P", "n_test", "N")}
    seeds = ds["seed"].values if "seed" in ds.dims else [ds.attrs["seed"]]
    scales = []
    for seed in seeds:
        params = experiment.defaults(**{**fixed, "seed": int(seed)})
        beta = experiment.init(jax.random.key(int(seed)), params)["data"]["beta"]
        scales.append(float(np.sum(np.asarray(beta, np.float64) ** 2) / params["D"]))
    return scales


MAX_DMFT_POINTS = 420   # the README's full-length D = 100 comparison needs 408
MIN_DMFT_POINTS = 61
DMFT_SAMPLES = 400


RICH_DS_PER_ALPHA_OVER_EPS = 0.02   # ds <= 0.02 alpha / eps: stable at alpha = 1/4, eps = 0.02
SETTLED_GROKKING_TIMES = 8          # a theory curve is followed to 8x the closed-form t_grok
SETTLED_MIN_S = 40.0                # ... and to at least s = t / D = 40


class DmftGrid(NamedTuple):
    """One DMFT time grid: its points (simulation time, (n,), from 0), the scheme that steps it
    (`dmft.grokking.solve`'s `scheme`) and a one-line description for the user."""

    times: np.ndarray
    scheme: str
    note: str

    @property
    def t_end(self) -> float:
        return float(self.times[-1])

    @property
    def dt(self) -> float:
        """The largest step."""
        return float(np.max(np.diff(self.times)))


def dmft_grid(scalars: dict, max_points: int = MAX_DMFT_POINTS,
              alpha: float | None = None) -> DmftGrid:
    """The DMFT's time grid for a sweep with these scalar parameters.

    The spacing is set in the theory's own time s = t / D: half the explicit scheme's stability
    limit ds < 1 / (1 + (P/D)^-1/2)^2 (`dmft.grokking.default_dt`), at least MIN_DMFT_POINTS
    points over the run. The number of points is then the run's horizon in that unit,
    steps x lr_scale / D / ds: a smaller D means a longer run in theory time, not a finer
    spacing.

    With `alpha` given the grid is that output scale's own: in the rich regime the explicit
    scheme also needs ds (eps / alpha) small (ds <= RICH_DS_PER_ALPHA_OVER_EPS alpha / eps; the
    default grid diverged at alpha = 1/8, eps = 0.02 and at alpha = 1/4, eps = 0.05), and a rich
    run's curves have settled long before a lazy run's horizon, so the theory follows them to
    max(SETTLED_GROKKING_TIMES x the closed-form grokking time (`dmft.grokking_scaling`, S7),
    s = SETTLED_MIN_S) and no further. If that uniform grid would have more than `max_points`
    points (cost grows as n^3), the grid is `dmft.grokking.adaptive_times` (steps growing from
    the same fine start to 0.02 alpha / eps once the linear fit has settled) stepped by the
    implicit scheme, stable at any step (dmft/README.md), if that fits; otherwise the
    theory stops early, on whichever of the two grids reaches further, and the note says where.
    """
    from dmft.grokking import adaptive_times, default_dt
    from dmft.grokking_cost import SLOW_DS_PER_ALPHA_OVER_EPS, STABLE_FRACTION, stability_limit_dt

    t_max, dim = scalars["steps"] * scalars["lr_scale"], scalars["D"]
    lam = scalars["P"] / dim
    t_run, why = t_max, ""
    rich_dt = float("inf")
    if alpha is not None:
        rich_dt = RICH_DS_PER_ALPHA_OVER_EPS * alpha / scalars["eps"] * dim
        settled = _settled_time(alpha, scalars["eps"], lam, dim)
        if settled < t_max:
            t_run, why = settled, (f" (alpha={alpha:g}: its curves have settled by then, "
                                   f"{SETTLED_GROKKING_TIMES}x the closed-form grokking time)")
    dt = min(default_dt(t_run, dim, lam), t_run / (MIN_DMFT_POINTS - 1))
    rich = rich_dt < dt
    if rich:
        dt = t_run / math.ceil(t_run / rich_dt)
    spacing = ("half its stability limit" if not rich else
               f"ds <= {RICH_DS_PER_ALPHA_OVER_EPS:g} alpha / eps in the rich regime")
    count = round(t_run / dt) + 1
    if count <= max_points:
        return DmftGrid(np.arange(count) * dt, "explicit",
                        f"DMFT grid dt={dt:.4g} (ds = dt / D = {dt / dim:.3g} in the theory's "
                        f"time s = t / D, {spacing}) over t <= {t_run:.6g} (s <= "
                        f"{t_run / dim:.4g}){why}")
    if not rich:
        dt = STABLE_FRACTION * stability_limit_dt(dim, lam)
    times = np.arange(max_points) * dt
    grid, scheme = (f"DMFT grid dt={dt:.4g} (ds = {dt / dim:.3g}, {spacing} in the theory's "
                    f"time s = t / D)"), "explicit"
    if alpha is not None:
        adaptive = adaptive_times(t_run, dim, lam, alpha, scalars["eps"])
        steps = np.diff(adaptive) / dim
        description = (f"non-uniform DMFT grid, implicit scheme: ds = {steps[0]:.3g} .. "
                       f"{steps.max():.3g} in the theory's time s = t / D (fine while the "
                       f"linear fit settles, then up to {SLOW_DS_PER_ALPHA_OVER_EPS:g} alpha / "
                       f"eps)")
        if adaptive.size <= max_points:
            return DmftGrid(adaptive, "implicit", (
                f"{description}, {adaptive.size} points over t <= {t_run:.6g} (s <= "
                f"{t_run / dim:.4g}){why}"))
        if adaptive[max_points - 1] > times[-1] * (1 + 1e-9):     # it reaches further
            times, grid, scheme = adaptive[:max_points], description, "implicit"
    t_end = float(times[-1])
    return DmftGrid(times, scheme, (
        f"{grid}, {max_points} points: the theory stops at t={t_end:.4g} "
        f"(s={t_end / dim:.4g}) of the simulation's t={t_max:g} (s={t_max / dim:.4g}); its "
        f"cost grows as n^3: raise `--theory-points` (`max_points=`) to cover the whole run"))


def _settled_time(alpha: float, eps: float, lam: float, dim: int) -> float:
    """max(SETTLED_GROKKING_TIMES x S7's grokking time, SETTLED_MIN_S x D); inf where S7 does
    not apply (alpha eps too large for the grokking regime, or P / D <= 1)."""
    from dmft.grokking_scaling import grokking_time

    try:
        t_grok = float(grokking_time(alpha, eps, lam, dim))
    except ValueError:
        return float("inf")
    if not math.isfinite(t_grok) or t_grok <= 0:
        return float("inf")
    return max(SETTLED_GROKKING_TIMES * t_grok, SETTLED_MIN_S * dim)


def dmft_grids(scalars: dict, alphas, max_points: int = MAX_DMFT_POINTS
               ) -> list[tuple[list[float], DmftGrid]]:
    """[(alphas, grid)]: each alpha's grid (`dmft_grid(alpha=)`), alphas that share a grid
    grouped so that they are solved together (one compilation, vmapped)."""
    groups: dict[tuple, list] = {}
    for alpha in alphas:
        grid = dmft_grid(scalars, max_points, alpha=float(alpha))
        key = (grid.scheme, grid.times.size, round(grid.t_end, 9), round(grid.dt, 12))
        groups.setdefault(key, [[], grid])[0].append(float(alpha))
    return [tuple(group) for group in groups.values()]


def _solved_per_grid(scalars: dict, alphas, scales, max_points: int, n_samples: int,
                     progress: bool, draws: int = 1, keep=None):
    """Yield the DMFT curves (alpha, time), averaged over the teacher `scales` and over `draws`
    Monte Carlo draws (seeds 0..draws-1, solved together; `solve` warns when they disagree), of
    each group of alphas that share a grid (`dmft_grids`), printing the grid and its cost first
    (stderr). `keep`: a folder for each solve's checkpoint (`dmft.checkpoint`), named after
    what it solves."""
    import sys

    from dmft.checkpoint import short_name
    from dmft.grokking import estimate_cost, solve

    lam = scalars["P"] / scalars["D"]
    sizes = {"n_samples": n_samples, "n_response": 32}
    for group, grid in dmft_grids(scalars, alphas, max_points):
        cost = estimate_cost(D=scalars["D"], P_over_D=lam, batch=len(group) * len(scales),
                             times=grid.times, draws=draws, **sizes)
        # with a progress bar, `solve` prints the same cost line itself
        print(f"{grid.note}; alpha {', '.join(f'{a:g}' for a in group)} x {len(scales)} "
              f"teacher scale(s)" + (f" x {draws} Monte Carlo draws" if draws > 1 else "")
              + ("" if progress else f": {cost}"), file=sys.stderr)
        settings = dict(D=scalars["D"], times=grid.times, scheme=grid.scheme,
                        target_scale=list(scales), seed=list(range(draws)) if draws > 1 else 0,
                        **sizes)
        if keep is not None:
            what = (group, scalars["eps"], lam, scalars["lr_scale"],
                    sorted((k, np.asarray(v).tolist()) for k, v in settings.items()))
            settings["checkpoint"] = keep / f"dmft_{short_name(what)}.npz"
        theory = solve(group, scalars["eps"], lam, scalars["lr_scale"], tol=1e-5,
                       progress=progress, **settings)
        curves = theory.isel(eps=0).mean("target_scale")
        yield (curves.mean("mc_seed").assign_attrs(mc_spread=theory.attrs["mc_spread"])
               if draws > 1 else curves)


def dmft_curves(ds, scalars: dict, max_points: int = MAX_DMFT_POINTS,
                n_samples: int = DMFT_SAMPLES, progress: bool = True, draws: int = 1,
                keep=None):
    """DMFT curves for every alpha of the sweep (N -> infinity), averaged over the seeds' teacher
    scales |beta|^2 / D, each alpha on its own grid (`dmft_grids`; alphas that share one are
    solved together). Prints each grid and the expected memory and run time (stderr) before
    solving, and refuses (MemoryEstimateError) what would not fit; `progress` shows the
    fixed-point iteration's bar. `draws` > 1 solves that many Monte Carlo draws and returns
    their mean (attrs `mc_spread`; `dmft.grokking.solve` warns when they disagree). `keep`: a
    folder (pathlib.Path) in which each solve keeps a checkpoint, so that a killed call resumes.

    Returns:
        Dataset over (alpha, time) on the union of the grids; a curve is NaN past its own grid's
        end (a rich run's theory stops once its curves have settled, see `dmft_grid`).
    """
    import xarray as xr

    alphas = ds["alpha"].values if "alpha" in ds.dims else [ds.attrs["alpha"]]
    parts = list(_solved_per_grid(scalars, alphas, teacher_scales(ds), max_points, n_samples,
                                  progress, draws, keep))
    if len(parts) == 1:
        return parts[0]
    time = np.unique(np.concatenate([part.time.values for part in parts]))
    merged = xr.concat([part.drop_vars("step").interp(time=time[time <= part.time.values[-1]])
                        .reindex(time=time) for part in parts], dim="alpha")
    merged = merged.sortby("alpha")
    merged.attrs = dict(parts[0].attrs, grids=len(parts))
    if "mc_spread" in merged.attrs:            # the draws' worst disagreement over all grids
        merged.attrs["mc_spread"] = max(part.attrs["mc_spread"] for part in parts)
    return merged.assign_coords(step=("time", time / scalars["lr_scale"]))


def dmft_half_times(scalars: dict, alphas, teacher_scale: float,
                    max_points: int = MAX_DMFT_POINTS, n_samples: int = DMFT_SAMPLES,
                    progress: bool = True):
    """The DMFT's half times (`lazyrich.metrics.grokking_times`, floor 0: half the plateau, the
    phase diagram's definition) for every alpha at one (D, P, eps), each alpha on its own grid
    (`dmft_grids`).

    Args:
        scalars: steps, lr_scale, D, P, eps of the runs the theory predicts.
        alphas: output scales; teacher_scale: b = |beta|^2 / D of the target.
    Returns:
        Dataset over alpha with t_half_train, t_half_test, delay (simulation time units; NaN
        where the theory's grid ends before the curve makes half its drop).
    """
    import xarray as xr

    from lazyrich.measures.grokking_times import grokking_times

    parts = [grokking_times(curves, train="train_loss", test="test_loss", floor=0.0)
             for curves in _solved_per_grid(scalars, alphas, [float(teacher_scale)], max_points,
                                            n_samples, progress)]
    return xr.concat(parts, dim="alpha").sortby("alpha")
