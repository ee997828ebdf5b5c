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


def dmft_curves(ds, scalars: dict):
    """DMFT curves for every alpha of the sweep (N -> infinity), averaged over the seeds' teacher
    scales |beta|^2 / D."""
    import numpy as np

    from dmft.grokking import solve

    alphas = ds["alpha"].values if "alpha" in ds.dims else [ds.attrs["alpha"]]
    t_max = scalars["steps"] * scalars["lr_scale"]
    lam = scalars["P"] / scalars["D"]
    limit = scalars["D"] / (1 + lam**-0.5) ** 2      # explicit-scheme stability bound on dt
    dt = t_max / max(int(np.ceil(t_max / (0.5 * limit))), 60)
    theory = solve(alphas, scalars["eps"], lam, scalars["lr_scale"], t_max, dt, D=scalars["D"],
                   target_scale=teacher_scales(ds), n_samples=400, n_response=32, tol=1e-5)
    return theory.isel(eps=0).mean("target_scale")
