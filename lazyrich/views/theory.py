"""Theory curves for a simulation Dataset: what `lazyrich compare` lays over the simulation.

The command line and the gallery are applications on top of both packages, so this view may
import `dmft`; the simulator's own modules never do.
"""

from __future__ import annotations


def teacher_scales(ds) -> list[float]:
    """b = |beta|^2 / D of the simulation's own teacher for each seed of the sweep.

    The teacher is re-drawn exactly as the run drew it (same key, same parameters), so the
    theory's target scale matches each seed (|beta|^2 / D scatters by sqrt(2 / D) around 1, and
    the loss plateau scales as b^2)."""
    import jax
    import numpy as np

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


def dmft_grid(scalars: dict, max_points: int = MAX_DMFT_POINTS) -> tuple[float, float, str]:
    """(t_end, dt, note): the DMFT's time grid for a sweep with these scalar parameters.

    The spacing is set in the theory's own time s = t / D: half the explicit scheme's stability
    limit ds < 1 / (1 + (P/D)^-1/2)^2 (`dmft.grokking.default_dt`), at least MIN_DMFT_POINTS
    points over the run. The number of points is then the run's horizon in that unit,
    steps x lr_scale / D / ds: a smaller D means a longer run in theory time, not a finer
    spacing. Past `max_points` (cost grows as n^3) the theory stops early and `note` says where.
    """
    from dmft.grokking import default_dt
    from dmft.grokking_cost import STABLE_FRACTION, stability_limit_dt

    t_max, dim = scalars["steps"] * scalars["lr_scale"], scalars["D"]
    lam = scalars["P"] / dim
    dt = min(default_dt(t_max, dim, lam), t_max / (MIN_DMFT_POINTS - 1))
    note = (f"DMFT grid dt={dt:.4g} (ds = dt / D = {dt / dim:.3g} in the theory's time s = t / D,"
            f" half its stability limit) over t <= {t_max:g} (s <= {t_max / dim:.4g})")
    if round(t_max / dt) + 1 <= max_points:
        return t_max, dt, note
    dt = STABLE_FRACTION * stability_limit_dt(dim, lam)
    t_end = (max_points - 1) * dt
    return t_end, dt, (f"DMFT grid dt={dt:.4g} (ds = {dt / dim:.3g}, half the stability limit "
                       f"in the theory's time s = t / D), {max_points} points: the theory stops "
                       f"at t={t_end:.4g} (s={t_end / dim:.4g}) of the simulation's "
                       f"t={t_max:g} (s={t_max / dim:.4g}); its cost grows as n^3, so longer "
                       f"horizons need dmft.grokking.solve directly")


def dmft_curves(ds, scalars: dict, max_points: int = MAX_DMFT_POINTS, progress: bool = True):
    """DMFT curves for every alpha of the sweep (N -> infinity), averaged over the seeds' teacher
    scales |beta|^2 / D. Prints the grid and the expected memory and run time (stderr) before
    solving, and refuses (MemoryEstimateError) what would not fit; `progress` shows the fixed-point
    iteration's bar."""
    import sys

    from dmft.grokking import estimate_cost, solve

    alphas = ds["alpha"].values if "alpha" in ds.dims else [ds.attrs["alpha"]]
    t_end, dt, note = dmft_grid(scalars, max_points)
    lam = scalars["P"] / scalars["D"]
    scales = teacher_scales(ds)
    sizes = {"n_samples": 400, "n_response": 32}
    cost = estimate_cost(t_end, dt, D=scalars["D"], P_over_D=lam,
                         batch=len(alphas) * len(scales), **sizes)
    # with a progress bar, `solve` prints the same cost line itself
    print(f"{note}; {len(alphas)} alpha x {len(scales)} teacher scale(s)"
          + ("" if progress else f": {cost}"), file=sys.stderr)
    theory = solve(alphas, scalars["eps"], lam, scalars["lr_scale"], t_end, dt, D=scalars["D"],
                   target_scale=scales, tol=1e-5, progress=progress, **sizes)
    return theory.isel(eps=0).mean("target_scale")
