"""The grokking DMFT against the N -> infinity simulation it predicts: the agreement table.

For one (D, eps, P/D) and a list of alphas, runs `lazyrich.sweep("grokking",
dynamics="infinite")` over `seeds` seeds (the exact N -> infinity dynamics at that D) and
`dmft.grokking.solve` with each seed's teacher scale b = |beta|^2 / D, and compares the
seed-mean curves: relative L2 error of the population test loss over the run, relative error of
the grokking time and of the train-to-test delay (`dmft/grokking_timing.py`). Time runs over
0..80 D at lr_scale = D / 20 (1600 steps) unless `horizon` says otherwise, the setting of
every table in `dmft/README.md`.
"""

from __future__ import annotations

import pathlib
import time

import jax
import numpy as np

from dmft import grokking
from dmft.checkpoint import NOT_IN_MAP, short_name
from dmft.grokking_timing import delay, grokking_time, half_drop_time


def teacher_scales(seeds, D: int, P: int) -> list[float]:
    """b = |beta|^2 / D of the simulation's teacher for each seed (drawn as the run draws it)."""
    import lazyrich
    from lazyrich.experiments import grokking as experiment

    params = lazyrich.get_experiment("grokking").defaults(D=D, P=P, N=1, n_test=1,
                                                          dynamics="infinite")
    return [float(np.sum(np.asarray(experiment.init(jax.random.key(int(s)), params)["data"][
        "beta"], np.float64) ** 2) / D) for s in seeds]


def relative_error(estimate: float, reference: float) -> float:
    """(estimate - reference) / reference; nan when either is nan."""
    return float((estimate - reference) / reference)


TEACHERS = ("per_seed", "mean")
GRIDS = ("uniform", "adaptive")


def agreement(D: int, alphas, eps: float, P_over_D: float, seeds: int = 8,
              teacher: str = "per_seed", grid: str = "uniform", horizon: float = 80.0,
              keep=None, **settings) -> list[dict]:
    """One row per alpha: errors of the DMFT against the seed-mean simulation.

    Args:
        D: input dimension (P = round(P_over_D D) training points).
        alphas: output scales; eps: quadratic coefficient; seeds: simulations per alpha.
        teacher: "per_seed" solves the DMFT at each seed's teacher scale b = |beta|^2 / D and
            averages the curves (the issue's protocol; costs `seeds` times more), "mean" solves
            it once at the seeds' mean b.
        grid: "uniform" solves all alphas together on `solve`'s default grid (explicit
            scheme; pass dt= in settings for rich alphas), "adaptive" solves each alpha on its
            own `grokking.adaptive_times` grid with the implicit scheme (fine only where its
            curves move: far fewer points for lazy alphas, the small steps a rich alpha needs).
        horizon: length of the run in units of D (time 0..horizon D at lr_scale = D / 20, i.e.
            20 horizon steps; a multiple of 0.5, the simulation logs every 10 steps).
        keep: a folder (it must exist) in which the row's work is kept as it goes: the
            simulations in a sweep store, each DMFT solve in a checkpoint, named after the
            cell; the same call again (after a kill, say) reads what is finished and resumes
            the rest. None: nothing kept.
        settings: keyword arguments of `dmft.grokking.solve` (n_samples, n_response, seed, ...).

    Returns:
        [{"alpha", "test_l2", "grok", "delay", "train_half", "test_half", "grok_sim",
          "delay_sim", "sim_seconds", "theory_seconds", "iterations", "converged",
          "mc_spread"}] with grok, delay and the half-drop times of the train and test losses as
        relative errors (nan where the simulation's curve never makes the drop); with a list
        `seed` in settings the theory is the draws' mean and mc_spread their
        `grokking_statistics.seed_spread` (nan for one seed).
    """
    import lazyrich

    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}; got {teacher!r}")
    steps = 20 * horizon if isinstance(horizon, (int, float)) else float("nan")
    if not (steps >= 10 and steps == int(steps) and int(steps) % 10 == 0):
        raise ValueError(f"horizon={horizon!r} must be a positive multiple of 0.5 (the run "
                         f"takes 20 horizon steps, logged every 10)")
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}; got {grid!r}")
    overridden = sorted({"t_max", "dt", "times", "scheme"} & set(settings))
    if grid == "adaptive" and overridden:
        raise ValueError(f"grid='adaptive' sets the times and the scheme itself; drop "
                         f"{overridden} from the solve settings")
    if keep is not None and not pathlib.Path(keep).is_dir():
        raise ValueError(f"keep={str(keep)!r} must be an existing folder")
    if keep is not None and "checkpoint" in settings:
        raise ValueError("keep= names each solve's checkpoint itself; drop checkpoint from the "
                         "solve settings")
    P, lr_scale = int(round(P_over_D * D)), D / 20
    seed_list = list(range(seeds))
    cell = f"D{D}_eps{eps:g}_PD{P_over_D:g}_s{seeds}_h{horizon:g}"
    # solves with other settings get other checkpoints (a checkpoint refuses another solve)
    tag = short_name(sorted((k, v) for k, v in settings.items() if k not in NOT_IN_MAP))
    named = "_".join(f"{a:g}" for a in alphas)

    def kept(argument: str, file_name: str) -> dict:
        return {} if keep is None else {argument: pathlib.Path(keep) / file_name}

    start = time.perf_counter()
    sim = lazyrich.sweep("grokking", alpha=[float(a) for a in alphas], eps=eps, D=D, P=P, N=1,
                         n_test=10, lr_scale=lr_scale, steps=int(steps), log_every=10,
                         dynamics="infinite", seed=seed_list, progress=False,
                         **kept("store", f"sim_{cell}_a{named}.zarr"))
    sim_seconds = time.perf_counter() - start
    scales = teacher_scales(seed_list, D, P)
    target = scales if teacher == "per_seed" else float(np.mean(scales))
    start = time.perf_counter()
    if grid == "uniform":
        solved = grokking.solve(list(alphas), eps, P / D, lr_scale, t_max=horizon * D, D=D,
                                target_scale=target, progress=False, **settings,
                                **kept("checkpoint", f"dmft_{cell}_{teacher}_a{named}_{tag}.npz"))
        theories = {float(a): solved.sel(alpha=a) for a in alphas}
    else:
        theories = {float(a): grokking.solve(
            float(a), eps, P / D, lr_scale, D=D, target_scale=target,
            times=grokking.adaptive_times(horizon * D, D, P / D, a, eps), scheme="implicit",
            progress=False, **settings,
            **kept("checkpoint", f"dmft_{cell}_{teacher}_a{a:g}_adaptive_{tag}.npz"),
        ).isel(alpha=0) for a in alphas}
    theory_seconds = time.perf_counter() - start
    # several Monte Carlo draws (seed=[...]): the row compares their mean and reports spread
    spreads = {a: t.attrs.get("mc_spread", float("nan")) for a, t in theories.items()}
    theories = {a: t.mean("mc_seed", keep_attrs=True) if "mc_seed" in t.dims else t
                for a, t in theories.items()}
    t = sim.time.values
    rows = []
    for alpha in alphas:
        one = sim.sel(alpha=alpha) if "alpha" in sim.dims else sim
        sim_test = one.test_loss_population.mean("seed").values
        sim_train = one.train_loss.mean("seed").values
        curves = theories[float(alpha)].isel(eps=0).mean("target_scale")
        test, train = (curves[v].interp(time=t).values for v in ("test_loss", "train_loss"))
        grok_sim, delay_sim = grokking_time(t, sim_test), delay(t, sim_train, sim_test)
        rows.append({"alpha": float(alpha),
                     "test_l2": float(np.linalg.norm(test - sim_test) / np.linalg.norm(sim_test)),
                     "grok": relative_error(grokking_time(t, test), grok_sim),
                     "delay": relative_error(delay(t, train, test), delay_sim),
                     "train_half": relative_error(half_drop_time(t, train),
                                                  half_drop_time(t, sim_train)),
                     "test_half": relative_error(half_drop_time(t, test),
                                                 half_drop_time(t, sim_test)),
                     "grok_sim": grok_sim, "delay_sim": delay_sim, "sim_seconds": sim_seconds,
                     "theory_seconds": theory_seconds,
                     "iterations": int(theories[float(alpha)].attrs["iterations"]),
                     "converged": bool(theories[float(alpha)].attrs["converged"]),
                     "mc_spread": spreads[float(alpha)]})
    return rows


def format_rows(D: int, eps: float, P_over_D: float, rows: list[dict]) -> str:
    """The rows as a text table, one line per alpha."""
    lines = []
    for r in rows:
        lines.append(f"D={D:>4} eps={eps:<5g} P/D={P_over_D:<4g} alpha={r['alpha']:<5g} "
                     f"test L2 {r['test_l2']:6.1%}  grok {r['grok']:+7.1%} (sim "
                     f"{r['grok_sim']:8.0f})  delay {r['delay']:+7.1%} (sim "
                     f"{r['delay_sim']:8.0f})  train half {r['train_half']:+7.1%}  test half "
                     f"{r['test_half']:+7.1%}"
                     + ("" if np.isnan(r.get("mc_spread", np.nan))
                        else f"  MC spread {r['mc_spread']:.1%}")
                     + f"  [{r['iterations']} it, theory "
                     f"{r['theory_seconds']:.0f} s, sim {r['sim_seconds']:.0f} s]")
    return "\n".join(lines)


def parse_solve_settings(items) -> dict:
    """`name=value` strings (a benchmark's `--solve` flag) as keyword arguments of
    `dmft.grokking.solve`: integers, then floats, else the string itself; a comma-separated
    value is a list of those (seed=0,1: two Monte Carlo draws)."""
    settings = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"--solve takes name=value items (e.g. n_samples=400); got {item!r}")
        parsed = [_parse_value(part) for part in value.split(",")]
        settings[name] = parsed if "," in value else parsed[0]
    return settings


def _parse_value(text: str):
    """An int, else a float, else the string itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
