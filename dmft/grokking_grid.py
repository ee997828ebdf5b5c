"""N -> infinity simulations of the grokking model on a grid, for checking `dmft.grokking_scaling`.

The closed form of the grokking time is checked against the exact N -> infinity dynamics of
`lazyrich.sweep("grokking", dynamics="infinite")`: this module runs those same functions
(`lazyrich.experiments.grokking.init / step / metrics`) but gives every run its own learning rate
and horizon, so that one compiled program covers alpha in 2^-3 .. 2^3 and eps in 0.02 .. 0.1,
whose grokking times span three decades. Each run's horizon is a multiple of its own
closed-form grokking time and lr_scale = horizon / steps, which keeps the per-step growth of
the spike (rate x lr_scale) below ~1e-2: the runs are gradient flow to within ~1%.

    python -m dmft.grokking_grid --D 100 200 --out grid.npz     # the issue's grid (GPU: minutes)
    python -m dmft.grokking_grid --load grid.npz                # its tables again, no simulation

Each (D, P/D) prints four tables (rows eps, columns alpha): the closed-form grokking time (S7)
and train half time (S13) over the seed-median simulated ones, minus 1; the closed-form delay
(S14) minus the simulated one (seed medians), as a fraction of the simulated grokking time; and
the delay with the simulated grokking time in place of S7 over the simulated delay, minus 1.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from dmft.grokking_scaling import grokking_time, train_half_time
from lazyrich.experiments import grokking as experiment
from lazyrich.measures.grokking_times import half_time

CURVES = ("train_loss", "test_loss_population", "beta_M_beta", "trace_M", "v_norm2")
GRID = {"alpha": 2.0 ** np.arange(-3, 4), "eps": (0.02, 0.05, 0.1), "P_over_D": (2, 3, 5, 8)}


def horizons(alpha, eps, P_over_D: float, D: int, factor: float = 4.0,
             minimum_over_D: float = 30.0) -> np.ndarray:
    """Per-run horizon (time units): factor x a rough grokking time, at least 30 D.

    The rough time, alpha D log(2 D / (alpha eps)) / (12 eps (1 - D / P)), is the spike's
    e-folding time times its log amplification (dmft/README.md); it only sets the horizon, so
    the grid does not change when the closed form is refined.
    """
    alpha, eps = np.asarray(alpha, float), np.asarray(eps, float)
    rough = alpha * D * np.log(2 * D / (alpha * eps)) / (12 * eps * (1 - 1 / P_over_D))
    return np.maximum(factor * rough, minimum_over_D * D)


def simulate_runs(D: int, P: int, alpha, eps, lr_scale, seed, *, steps: int,
                  log_every: int) -> dict[str, np.ndarray]:
    """Run the N -> infinity grokking dynamics for runs given as flat (R,) parameter arrays.

    Returns CURVES as (R, steps / log_every + 1) arrays, `time` (R, T) (step x lr_scale) and
    `b` (R,) = |beta|^2 / D of each run's teacher.
    """
    if steps % log_every:
        raise ValueError(f"steps ({steps}) must be a multiple of log_every ({log_every})")
    static = {name: parameter.default for name, parameter in experiment.PARAMETERS.items()}
    static.update(D=D, P=P, N=1, n_test=8, dynamics="infinite", steps=steps,
                  log_every=log_every)

    def one(a, e, lr, s):
        p = dict(static, alpha=a, eps=e, lr_scale=lr)
        state = experiment.init(jax.random.key(s), p)

        def record(st):
            # the barrier keeps XLA from folding the initial dS = 0 into a constant: jaxlib
            # 0.10's CPU "ynn" fusion of a dot with a broadcast zero, a multiply and a sum
            # returns garbage (inf / NaN / 1e37 instead of 0) at D >= 40
            values = experiment.metrics(jax.lax.optimization_barrier(st), p)
            return {name: values[name] for name in CURVES}

        def block(st, _):
            st = jax.lax.fori_loop(0, log_every, lambda i, x: experiment.step(x, p), st)
            return st, record(st)

        _, logged = jax.lax.scan(block, state, None, length=steps // log_every)
        first = record(state)
        curves = {k: jnp.concatenate([first[k][None], logged[k]]) for k in CURVES}
        beta = state["data"]["beta"]
        curves["b"] = beta @ beta / D
        return curves

    arrays = [jnp.asarray(np.asarray(v, float)) for v in (alpha, eps, lr_scale)]
    seeds = jnp.asarray(np.asarray(seed, np.uint32))
    out = jax.jit(jax.vmap(one))(*arrays, seeds)
    out = {k: np.asarray(v) for k, v in out.items()}
    out["time"] = np.asarray(lr_scale, float)[:, None] * np.arange(0, steps + 1, log_every)
    return out


def simulate_grid(D: int, P_over_D: float, seeds=range(4), *, steps: int = 20_000,
                  log_every: int = 50, alpha=GRID["alpha"], eps=GRID["eps"]) -> dict:
    """All (alpha, eps, seed) runs at one (D, P/D): curves shaped (alpha, eps, seed, T)."""
    combos = list(itertools.product(alpha, eps, seeds))
    a, e, s = (np.array(c) for c in zip(*combos, strict=True))
    lr = horizons(a, e, P_over_D, D) / steps
    out = simulate_runs(D, round(P_over_D * D), a, e, lr, s, steps=steps, log_every=log_every)
    shape = (len(alpha), len(eps), len(tuple(seeds)))
    return {k: v.reshape(shape + v.shape[1:]) for k, v in out.items()}


def median_half_times(runs: dict, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(seed-median half time of curve `name`, fraction of seeds whose curve halved), both
    (alpha, eps), from `simulate_grid`'s output (half time: floor 0); the median is NaN where
    at most half the seeds got there."""
    curves, times = runs[name], runs["time"]
    n_alpha, n_eps, n_seeds = curves.shape[:3]
    t_half = np.array([[[half_time(curves[i, j, s], times[i, j, s], floor=0.0)
                         for s in range(n_seeds)] for j in range(n_eps)] for i in range(n_alpha)])
    fraction = np.mean(np.isfinite(t_half), axis=-1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)       # all-NaN rows: NaN, as intended
        median = np.where(fraction > 0.5, np.nanmedian(t_half, axis=-1), np.nan)
    return median, fraction


def relative_errors(runs: dict, D: int, P_over_D: float, alpha=GRID["alpha"],
                    eps=GRID["eps"]) -> tuple[np.ndarray, np.ndarray]:
    """(closed form / seed-median simulated half time - 1, fraction of seeds that grokked),
    both (alpha, eps), from `simulate_grid`'s output (half time: floor 0, the population test
    loss)."""
    median, grokked = median_half_times(runs, "test_loss_population")
    theory = grokking_time(np.asarray(alpha)[:, None], np.asarray(eps)[None], P_over_D, D)
    return theory / median - 1, grokked


def train_and_delay_errors(runs: dict, D: int, P_over_D: float, alpha=GRID["alpha"],
                           eps=GRID["eps"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(closed-form / seed-median simulated train half time - 1, (closed-form delay - simulated
    delay) / simulated grokking time, (simulated grokking time - closed-form train half time) /
    simulated delay - 1: S13's share of the delay error), each (alpha, eps), seed medians,
    NaN where most seeds never grok."""
    t_train, _ = median_half_times(runs, "train_loss")
    t_test, _ = median_half_times(runs, "test_loss_population")
    grid = (np.asarray(alpha)[:, None], np.asarray(eps)[None], P_over_D, D)
    theory_train = train_half_time(*grid)
    theory_delay = grokking_time(*grid) - theory_train
    delay = t_test - t_train
    return (theory_train / t_train - 1, (theory_delay - delay) / t_test,
            (t_test - theory_train) / delay - 1)


def _print_tables(runs: dict, D: int, lam: float, seconds: float | None = None) -> None:
    took = "" if seconds is None else f" ({seconds:.1f} s)"
    errors, grokked = relative_errors(runs, D, lam)
    train, delay, train_share = train_and_delay_errors(runs, D, lam)
    alphas = " ".join(f"{a:g}" for a in GRID["alpha"])
    print(f"D={D} P/D={lam:g}{took}: closed form / simulation - 1 in %, alpha = {alphas}")
    print(format_errors(errors, grokked))
    print("  train half time, closed form / simulation - 1 in %")
    print(format_errors(train, grokked))
    print("  delay, (closed form - simulation) / simulated grokking time in %")
    print(format_errors(delay, grokked))
    print("  delay with the simulated grokking time, (t_grok - S13) / simulated delay - 1 in %")
    print(format_errors(train_share, grokked), flush=True)


def load_grid(path: str) -> dict:
    """{(D, P/D): runs} from a file written by `main` (keys D{D}_lam{P/D}_{curve}). A run whose
    step-0 train loss is not finite (files written before the optimization barrier in
    `simulate_runs`) is refused, naming the file."""
    data = np.load(path)
    grids: dict = {}
    for key in data.files:
        if not key.startswith("D"):
            continue
        size, lam, name = key.split("_", 2)
        grids.setdefault((int(size[1:]), float(lam[3:])), {})[name] = data[key]
    for (D, lam), runs in grids.items():
        if not np.all(np.isfinite(runs["train_loss"][..., 0])):
            raise ValueError(f"{path}: D={D} P/D={lam:g} has a non-finite step-0 train loss "
                             f"(written before the fix in simulate_runs): rerun that grid")
    return grids


def format_errors(errors: np.ndarray, grokked: np.ndarray, eps=GRID["eps"]) -> str:
    """One line per eps: the error in % for each alpha ('-' where most seeds never grok)."""
    lines = []
    for j, e in enumerate(eps):
        cells = [f"{100 * x:+5.0f}" if np.isfinite(x) else "    -" for x in errors[:, j]]
        lines.append(f"  eps={e:<5g}" + " ".join(cells)
                     + f"   (seeds grokked: {np.mean(grokked[:, j]):.0%})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--D", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--P_over_D", type=float, nargs="+", default=list(GRID["P_over_D"]))
    parser.add_argument("--seeds", type=int, default=4, help="seeds per point")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (seeds 0-7 have large "
                             "fourth moments of z at D = 100-400: dmft/README.md)")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--log_every", type=int, default=50)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--out", help="simulate, and save the curves here (.npz)")
    source.add_argument("--load", help="print the tables of a saved grid, no simulation")
    args = parser.parse_args()
    if args.load is not None:
        for (D, lam), runs in sorted(load_grid(args.load).items()):
            _print_tables(runs, D, lam)
        return
    jax.config.update("jax_enable_x64", True)
    saved = {}
    for D, lam in itertools.product(args.D, args.P_over_D):
        start = time.time()
        out = simulate_grid(D, lam, range(args.first_seed, args.first_seed + args.seeds),
                            steps=args.steps,
                            log_every=args.log_every)
        for k, v in out.items():
            saved[f"D{D}_lam{lam:g}_{k}"] = v
        _print_tables(out, D, lam, time.time() - start)
        np.savez_compressed(args.out, alpha=GRID["alpha"], eps=np.array(GRID["eps"]), **saved)


if __name__ == "__main__":
    main()
