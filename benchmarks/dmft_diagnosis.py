"""Where the grokking DMFT's error comes from: numerics against physics (issue 14).

Sections (each prints its own table; `--only` picks some):

- `knobs`: half times of one DMFT solve (D = 200, alpha = 1, eps = 0.02, P/D = 5, b = 1.03,
  t <= 50 D) as dt halves and as M_R grows (32, 128, 512), with rank 48 and tol 1e-7, and with
  the stratified choice of response paths at M_R = 16 .. 512;
- `flow`: the simulation is gradient flow: half times of `lazyrich.sweep(dynamics="infinite")`
  at lr_scale D / 20 and D / 80 and of `dmft.mean_field` (D = 200, 2 seeds);
- `statistics`: the seed-mean sufficient statistics of N -> infinity simulations (seeds
  `--seeds FIRST STOP`, default 0..31) against the DMFT at their mean teacher scale (D = 200,
  alpha = 1, t <= 60 D) at t = 1000 .. 12000, and the half times (`--per-seed`: also the DMFT
  at each seed's teacher scale);
- `drops`: the default-suite agreement check with one term of the closure removed at a time;
- `plateau`: each seed's least-squares plateau (train loss, |v|^2 / D, per b^2) against the
  P -> infinity values the DMFT starts from;
- `outliers`: the bulk's test-point fluctuation F that the DMFT's test loss drops, its isotropic
  share and the bulk's top eigenvalues / D in the exact N -> infinity dynamics
  (`dmft.grokking_outliers`, 8 seeds) at D = 100, 200, 400 for the richest cell (alpha = 0.25,
  eps = 0.05, P/D = 3, t <= 50 D) and alpha = 1, eps = 0.02, P/D = 5 (~15 min, most of it
  D = 400);
- `linear`: in the same runs (shared with `outliers` when both are asked for), the linear
  part's component along beta_hat that the DMFT's h field leaves out, c^2 = (v . beta_hat)^2 / D,
  against |v|^2 / D (its share times D: 1 for a v spread evenly over the D directions) and the
  test loss;
- `responses`: the memory averaged over M_R = 16, 64, 256 response paths ("first" and
  "stratified") against all M = 1000 (the draw's exact average), two draws in each of three
  cells (~10 min);
- `gap`: in that richest cell at D = 100, the DMFT's test loss (M = 2000, M_R = 64, the 32
  seeds' mean teacher scale) against the simulation's, with and without F added (~8 min).

    python benchmarks/dmft_diagnosis.py [--only SECTION ...]   (the sections above, by name)

About 15 minutes on 2 CPU cores (most of it M_R = 512 and the per-seed solve).
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

D, P_OVER_D, EPS, ALPHA = 200, 5.0, 0.02, 1.0


def _halves_of(ds, train: str = "train_loss", test: str = "test_loss") -> str:
    """`_halves` of a Dataset's (time,) train and test curves."""
    return _halves(ds.time.values, ds[train].values, ds[test].values)


def _halves(t, train, test) -> str:
    from dmft.grokking_timing import grokking_time, half_drop_time

    return (f"train half {half_drop_time(t, train):7.0f}  test half "
            f"{half_drop_time(t, test):7.0f}  grokking {grokking_time(t, test):7.0f}")


def knobs() -> None:
    from dmft import grokking

    print(f"== knobs: one DMFT solve, D={D}, alpha={ALPHA}, eps={EPS}, P/D={P_OVER_D}, b=1.03, "
          f"t <= 50 D, M=1000", flush=True)
    base = {"n_samples": 1000, "n_response": 32, "target_scale": 1.03, "tol": 1e-5}
    default = grokking.default_dt(50.0 * D, D, P_OVER_D)
    cases = [("default", {}), ("dt / 2", {"dt": default / 2}), ("M_R=128", {"n_response": 128}),
             ("M_R=512", {"n_response": 512}), ("rank 48", {"bulk_rank": 48}),
             ("tol 1e-7", {"tol": 1e-7, "max_iter": 80})]
    cases += [(f"M_R={count}, stratified", {"n_response": count,
                                            "response_sampling": "stratified"})
              for count in (16, 32, 64, 128, 512)]
    for name, change in cases:
        start = time.perf_counter()
        settings = {**base, **change}
        out = grokking.solve(ALPHA, EPS, P_OVER_D, D / 20, t_max=50.0 * D, D=D, progress=False,
                             **settings).isel(alpha=0, eps=0, target_scale=0)
        seconds = time.perf_counter() - start
        print(f"{name:>22}: {_halves_of(out)}  [{out.attrs['iterations']} it, {seconds:.0f} s]",
              flush=True)


def flow() -> None:
    import lazyrich
    from dmft import mean_field

    print(f"== flow: the simulation against gradient flow, D={D}, alpha={ALPHA}, 2 seeds",
          flush=True)
    common = {"alpha": ALPHA, "eps": EPS, "D": D, "P": int(P_OVER_D * D), "N": 1, "n_test": 10,
              "seed": [0, 1]}
    runs = {"GD, lr_scale D/20": lazyrich.sweep("grokking", lr_scale=D / 20, steps=1000,
                                                 log_every=10, dynamics="infinite",
                                                 progress=False, **common),
            "GD, lr_scale D/80": lazyrich.sweep("grokking", lr_scale=D / 80, steps=4000,
                                                 log_every=40, dynamics="infinite",
                                                 progress=False, **common),
            "mean_field (flow)": mean_field.sweep(lr_scale=D / 20, steps=1000, log_every=10,
                                                  **common)}
    for name, ds in runs.items():
        for seed in (0, 1):
            print(f"{name}, seed {seed}: "
                  f"{_halves_of(ds.sel(seed=seed), test='test_loss_population')}")


def statistics(seeds=range(32), per_seed: bool = False) -> None:
    import lazyrich
    from dmft import grokking
    from dmft.grokking_agreement import teacher_scales

    seeds, P = list(seeds), int(P_OVER_D * D)
    print(f"== statistics: {len(seeds)} simulations (seeds {seeds[0]}..{seeds[-1]}) against the "
          f"DMFT, D={D}, alpha={ALPHA}, t <= 60 D", flush=True)
    sim = lazyrich.sweep("grokking", alpha=ALPHA, eps=EPS, D=D, P=P, N=1, n_test=10,
                         lr_scale=D / 20, steps=1200, log_every=20, dynamics="infinite",
                         seed=seeds, progress=False)
    scales = teacher_scales(seeds, D, P)
    theory = grokking.solve(ALPHA, EPS, P_OVER_D, D / 20, t_max=60.0 * D, D=D,
                            target_scale=float(np.mean(scales)), n_samples=2000, n_response=64,
                            tol=1e-5, progress=False).isel(alpha=0, eps=0, target_scale=0)
    t = sim.time.values
    names = {"train_loss": "train_loss", "test_loss": "test_loss_population",
             "v_norm2": "v_norm2", "beta_M_beta": "beta_M_beta", "trace_M": "trace_M",
             "frob_M": "frob_M"}
    print("simulation / DMFT\n   time " + "".join(f"{k:>20}" for k in names))
    for moment in (1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000):
        i = int(np.argmin(np.abs(t - moment)))
        cells = [f"{float(sim[s].mean('seed')[i]):8.4f} /{float(theory[k].interp(time=t[i])):8.4f}"
                 for k, s in names.items()]
        print(f"{t[i]:7.0f} " + "".join(f"{c:>20}" for c in cells))
    print(f"teacher scales b: {np.round(scales, 3)} (mean {np.mean(scales):.3f})")
    for seed, b in list(zip(seeds, scales, strict=True))[:8]:
        print(f"simulation seed {seed} (b={b:.3f}): "
              f"{_halves_of(sim.sel(seed=seed), test='test_loss_population')}")
    print(f"simulation, seed-mean curves: "
          f"{_halves_of(sim.mean('seed'), test='test_loss_population')}")
    print(f"DMFT at the mean b: {_halves_of(theory)}")
    if not per_seed:
        return
    per_seed = grokking.solve(ALPHA, EPS, P_OVER_D, D / 20, t_max=60.0 * D, D=D,
                              target_scale=scales, n_samples=2000, n_response=32, tol=1e-5,
                              progress=False).isel(alpha=0, eps=0).mean("target_scale")
    print(f"DMFT, mean of the per-seed curves: {_halves_of(per_seed)}")


def plateau(seeds=range(32)) -> None:
    """The least-squares (lazy-fit) plateau of each seed's own training set, per b^2, against
    the P -> infinity values 3 (1 - 1 / lam) (train loss) and 3 / (lam - 1) (|v|^2 / D)."""
    import jax

    import lazyrich
    from lazyrich.experiments import grokking as experiment

    P = int(P_OVER_D * D)
    print(f"== plateau: least squares on each seed's training set, D={D}, P={P}; P -> infinity: "
          f"train {3 * (1 - 1 / P_OVER_D):.3f} b^2, |v|^2/D {3 / (P_OVER_D - 1):.3f} b^2")
    params = lazyrich.get_experiment("grokking").defaults(D=D, P=P, N=1, n_test=10,
                                                          dynamics="infinite")
    rows = []
    for seed in seeds:
        data = experiment.init(jax.random.key(seed), params)["data"]
        x = np.asarray(data["x_train"], np.float64) / np.sqrt(D)
        y, beta = np.asarray(data["y_train"], np.float64), np.asarray(data["beta"], np.float64)
        b = beta @ beta / D
        u = np.linalg.lstsq(x, y, rcond=None)[0]
        rows.append((np.mean((y - x @ u) ** 2) / b**2, u @ u / D / b**2, np.mean(y**2) / b**2))
        if len(rows) <= 8:
            print(f"seed {seed} (b={b:.3f}): train {rows[-1][0]:.3f} b^2, |v|^2/D "
                  f"{rows[-1][1]:.3f} b^2, mean z^4 {rows[-1][2]:.3f}")
    mean = np.mean(rows, axis=0)
    print(f"mean over seeds {seeds[0]}..{seeds[-1]}: train {mean[0]:.3f} b^2, |v|^2/D "
          f"{mean[1]:.3f} b^2, mean z^4 {mean[2]:.3f}")


def drops() -> None:
    """The default-suite agreement check (tests/test_dmft_agreement.py) with one term of the
    closure removed at a time (monkeypatched, as a scratch copy would): the test must fail for
    each term it claims to guard."""
    import jax.numpy as jnp

    import lazyrich
    from dmft import grokking
    from dmft import grokking_paths as paths_
    from dmft.grokking_agreement import teacher_scales

    seeds, dim, P = list(range(8)), 40, 120
    print("== drops: test-loss rel. L2 error at D=40, P/D=3, eps=0.1, alpha=1, t <= 600 "
          "(the test's bound: 7.5%)", flush=True)
    sim = lazyrich.sweep("grokking", alpha=1.0, eps=0.1, D=dim, P=P, N=1, n_test=10,
                         lr_scale=1.0, steps=600, log_every=10, dynamics="infinite",
                         seed=seeds, progress=False)
    t, simulated = sim.time.values, sim.test_loss_population.mean("seed").values
    scale = float(np.mean(teacher_scales(seeds, dim, P)))
    original = {name: getattr(paths_, name)
                for name in ("forces", "bulk_term", "spike_seed_variance")}

    def forces(a, z, nu, m, p, h_squared=True, h_factor=True):
        alpha, eps = p["alpha"], p["eps"]
        h, omega = a[..., 0], a[..., 1]
        g = nu * z + omega
        f = (h + h_squared * eps / (2 * alpha) * h**2
             + alpha * eps / 2 * (g**2 - z**2 / p["dim"]) + m)
        delta = f - p["scale"] * z**2
        phi_u = delta * (1 + h_factor * eps / alpha * h)
        return delta, g, jnp.stack([phi_u, eps / alpha * delta * g], axis=-1)

    variants = {
        "full closure": {},
        "A2 zeroed (G7b)": {"spike_seed_variance":
                            lambda *a: 0 * original["spike_seed_variance"](*a)},
        "bulk term of f zeroed (G4)": {"bulk_term": lambda q, z, a2, p: 0 * q},
        "(1 + eps h / alpha) of Phi_u dropped (G5)": {
            "forces": lambda *a: forces(*a, h_factor=False)},
        "(eps / 2 alpha) h^2 of f dropped (G3)": {
            "forces": lambda *a: forces(*a, h_squared=False)},
    }
    try:
        for name, patch in variants.items():
            for key, value in {**original, **patch}.items():
                setattr(paths_, key, value)
            # solve reuses the iteration it compiled for these shapes: drop it, or every
            # variant would run the first one's program
            grokking._compiled_iteration.cache_clear()
            theory = grokking.solve(1.0, 0.1, 3.0, 1.0, t_max=600.0, D=dim, target_scale=scale,
                                    n_samples=200, n_response=8, tol=1e-5, progress=False)
            predicted = theory.test_loss.isel(alpha=0, eps=0, target_scale=0).interp(time=t)
            error = np.linalg.norm(predicted.values - simulated) / np.linalg.norm(simulated)
            print(f"{name:>44}: {error:.3f}", flush=True)
    finally:
        for key, value in original.items():
            setattr(paths_, key, value)
        grokking._compiled_iteration.cache_clear()


# the cells `outliers` and `linear` measure: (alpha, eps, P/D, horizon in units of D)
MEASURED_CELLS = ((0.25, 0.05, 3.0, 50.0), (1.0, 0.02, 5.0, 80.0))


@functools.cache
def _measured(dim: int, alpha: float, eps: float, ratio: float, horizon: float):
    """`dmft.grokking_outliers.measure` of one cell at one D (8 seeds), once per process."""
    from dmft.grokking_outliers import measure

    return measure(dim, alpha, eps, ratio, horizon)


def outliers(dims=(100, 200, 400)) -> None:
    """F, F_iso, tau and the bulk's top eigenvalues / D at a few times s = t / D, per D."""
    print("== outliers: the bulk's test-point fluctuation F = 2 (alpha eps / 2)^2 tr(B^2) / D^2 "
          "(dropped by the DMFT) and its isotropic share, 8 seeds", flush=True)
    for alpha, eps, ratio, horizon in MEASURED_CELLS:
        for dim in dims:
            start = time.perf_counter()
            out = _measured(dim, alpha, eps, ratio, horizon).mean("seed")
            for s in (10, 20, 40, horizon):
                at = out.sel(time=s * dim, method="nearest")
                top = " ".join(f"{v:.1f}" for v in at.top.values[::-1])
                print(f"alpha={alpha:<4g} eps={eps:<4g} P/D={ratio:<3g} D={dim:<4} s={s:>3g}: "
                      f"test loss {float(at.test_loss_population):.3f}  F "
                      f"{float(at.fluctuation):.4f}  F_iso {float(at.isotropic):.5f}  tau "
                      f"{float(at.tau):.3f}  top eigenvalues / D {top}", flush=True)
            print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


def linear(dims=(100, 200, 400)) -> None:
    """c^2 = (v . beta_hat)^2 / D, |v|^2 / D, the share (v . beta_hat)^2 / |v|^2 times D and
    c^2 over the test loss at a few times s = t / D, per D (seed means)."""
    print("== linear: the linear part's beta_hat component c^2 = (v . beta_hat)^2 / D (the DMFT's "
          "h is independent of z), 8 seeds", flush=True)
    for alpha, eps, ratio, horizon in MEASURED_CELLS:
        for dim in dims:
            start = time.perf_counter()
            runs = _measured(dim, alpha, eps, ratio, horizon)
            share = (runs.linear_beta2 / runs.linear_norm2).mean("seed") * dim
            out = runs.mean("seed")
            for s in (10, 20, 40, horizon):
                i = int(np.argmin(np.abs(out.time.values - s * dim)))
                at = out.isel(time=i)
                print(f"alpha={alpha:<4g} eps={eps:<4g} P/D={ratio:<3g} D={dim:<4} s={s:>3g}: "
                      f"test loss {float(at.test_loss_population):.3f}  |v|^2/D "
                      f"{float(at.linear_norm2):.4f}  c^2 {float(at.linear_beta2):.2e}  share x D "
                      f"{float(share[i]):.2f}  c^2 / test loss "
                      f"{float(at.linear_beta2 / at.test_loss_population):.1e}", flush=True)
            print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


RESPONSE_CELLS = {   # name: (alpha, eps, P/D, solve settings)
    "D 40, eps 0.1, P/D 3, t <= 600": (1.0, 0.1, 3.0, {"t_max": 600.0, "D": 40,
                                                      "lr_scale": 1.0}),
    "D 30, eps 0.02, P/D 5, t <= 80 D": (1.0, 0.02, 5.0, {"t_max": 2400.0, "dt": 60.0, "D": 30,
                                                         "lr_scale": 1.5, "scheme": "implicit"}),
    "D 100, eps 0.05, P/D 3, alpha 0.5, t <= 30 D": (
        0.5, 0.05, 3.0, {"t_max": 3000.0, "dt": 50.0, "D": 100, "lr_scale": 5.0,
                         "scheme": "implicit"}),
}


def responses(paths: int = 1000) -> None:
    from dmft import grokking

    curves = ("test_loss", "train_loss", "v_norm2", "beta_M_beta")
    print(f"== responses: relative RMS distance (%) of {', '.join(curves)} from the solve with "
          f"all M = {paths} paths responding", flush=True)
    for name, (alpha, eps, ratio, settings) in RESPONSE_CELLS.items():
        point = functools.partial(grokking.solve, alpha, eps, ratio, n_samples=paths, tol=1e-7,
                                  progress=False, **settings)
        for seed in (0, 1):
            exact = point(n_response=paths, seed=seed)
            print(f"{name}, MC seed {seed}", flush=True)
            for count in (16, 64, 256):
                for sampling in ("first", "stratified"):
                    out = point(n_response=count, response_sampling=sampling, seed=seed)
                    far = [100 * float(np.sqrt(((out[c].values - exact[c].values) ** 2).mean()
                                               / (exact[c].values ** 2).mean())) for c in curves]
                    print(f"  M_R={count:<4} {sampling:>10}: "
                          + "  ".join(f"{d:6.2f}" for d in far), flush=True)

def gap(dim: int = 100, alpha: float = 0.25, eps: float = 0.05, ratio: float = 3.0,
        horizon: float = 50.0) -> None:
    """The DMFT's test-loss gap to the simulation against the dropped fluctuation F."""
    import lazyrich
    from dmft import grokking
    from dmft.grokking_agreement import teacher_scales
    from dmft.grokking_outliers import measure
    from dmft.grokking_timing import delay, grokking_time, half_drop_time

    P, seeds = int(round(ratio * dim)), list(range(32))
    sim = lazyrich.sweep("grokking", alpha=alpha, eps=eps, D=dim, P=P, N=1, n_test=10,
                         lr_scale=dim / 20, steps=int(20 * horizon), log_every=10,
                         dynamics="infinite", seed=seeds, progress=False)
    scale = float(np.mean(teacher_scales(seeds, dim, P)))
    theory = grokking.solve(alpha, eps, ratio, dim / 20, D=dim, target_scale=scale,
                            times=grokking.adaptive_times(horizon * dim, dim, ratio, alpha, eps),
                            scheme="implicit", n_samples=2000, n_response=64, tol=1e-5,
                            progress=False).isel(alpha=0, eps=0, target_scale=0)
    fluctuation = measure(dim, alpha, eps, ratio, horizon).fluctuation.mean("seed")
    t = sim.time.values
    simulated = sim.test_loss_population.mean("seed").values
    sim_train = sim.train_loss.mean("seed").values
    test, train = (theory[v].interp(time=t).values for v in ("test_loss", "train_loss"))
    added = np.interp(t, fluctuation.time.values, fluctuation.values)
    print(f"== gap: D={dim}, alpha={alpha}, eps={eps}, P/D={ratio}, b={scale:.3f} "
          f"({theory.attrs['iterations']} iterations)")
    for s in (5, 10, 20, 30, 40, horizon):
        i = int(np.argmin(np.abs(t - s * dim)))
        print(f"s={s:>4g}: simulation {simulated[i]:.3f}  DMFT {test[i]:.3f}  gap "
              f"{simulated[i] - test[i]:+.3f}  F {added[i]:.4f}")
    for name, curve in (("DMFT", test), ("DMFT + F", test + added)):
        error = np.linalg.norm(curve - simulated) / np.linalg.norm(simulated)
        print(f"{name:>8}: test L2 {error:.1%}"
              f"  grok {grokking_time(t, curve) / grokking_time(t, simulated) - 1:+.1%}  test half "
              f"{half_drop_time(t, curve) / half_drop_time(t, simulated) - 1:+.1%}  delay "
              f"{delay(t, train, curve) / delay(t, sim_train, simulated) - 1:+.1%}")


SECTIONS = {"drops": drops, "knobs": knobs, "responses": responses, "flow": flow,
            "statistics": statistics, "plateau": plateau, "outliers": outliers, "linear": linear,
            "gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--seeds", type=int, nargs=2, default=[0, 32], metavar=("FIRST", "STOP"),
                        help="simulation seeds range(FIRST, STOP) of `statistics` and `plateau`")
    parser.add_argument("--per-seed", action="store_true",
                        help="statistics: also solve the DMFT at every seed's teacher scale")
    args = parser.parse_args()
    if not 0 <= args.seeds[0] < args.seeds[1]:
        parser.error(f"--seeds FIRST STOP needs 0 <= FIRST < STOP; got {args.seeds}")
    seeds = range(*args.seeds)
    for name in args.only:
        if name == "statistics":
            statistics(seeds, args.per_seed)
        elif name == "plateau":
            plateau(seeds)
        else:
            SECTIONS[name]()


if __name__ == "__main__":
    main()
