"""Where the grokking DMFT's error comes from: numerics against physics (issue 14).

Sections (each prints its own table; `--only` picks some):

- `knobs`: half times of one DMFT solve (D = 200, alpha = 1, eps = 0.02, P/D = 5, b = 1.03,
  t <= 50 D) as dt halves and as M_R grows (32, 128, 512), with rank 48 and tol 1e-7;
- `flow`: the simulation is gradient flow: half times of `lazyrich.sweep(dynamics="infinite")`
  at lr_scale D / 20 and D / 80 and of `dmft.mean_field` (D = 200, 2 seeds);
- `statistics`: the seed-mean sufficient statistics of 8 N -> infinity simulations against the
  DMFT at their mean teacher scale (D = 200, alpha = 1, t <= 60 D) at t = 1000 .. 12000, and the
  per-seed half times against the DMFT's at the mean and at each seed's teacher scale.

    python benchmarks/dmft_diagnosis.py [--only knobs flow statistics]

About 15 minutes on 2 CPU cores (most of it M_R = 512 and the per-seed solve).
"""

from __future__ import annotations

import argparse
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
    for name, change in cases:
        start = time.perf_counter()
        settings = {**base, **change}
        out = grokking.solve(ALPHA, EPS, P_OVER_D, D / 20, t_max=50.0 * D, D=D, progress=False,
                             **settings).isel(alpha=0, eps=0, target_scale=0)
        seconds = time.perf_counter() - start
        print(f"{name:>9}: {_halves_of(out)}  [{out.attrs['iterations']} it, {seconds:.0f} s]",
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


def statistics() -> None:
    import lazyrich
    from dmft import grokking
    from dmft.grokking_agreement import teacher_scales

    seeds, P = list(range(8)), int(P_OVER_D * D)
    print(f"== statistics: 8 simulations against the DMFT, D={D}, alpha={ALPHA}, t <= 60 D",
          flush=True)
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
    for seed, b in zip(seeds, scales, strict=True):
        print(f"simulation seed {seed} (b={b:.3f}): "
              f"{_halves_of(sim.sel(seed=seed), test='test_loss_population')}")
    print(f"simulation, seed-mean curves: "
          f"{_halves_of(sim.mean('seed'), test='test_loss_population')}")
    print(f"DMFT at the mean b: {_halves_of(theory)}")
    per_seed = grokking.solve(ALPHA, EPS, P_OVER_D, D / 20, t_max=60.0 * D, D=D,
                              target_scale=scales, n_samples=2000, n_response=32, tol=1e-5,
                              progress=False).isel(alpha=0, eps=0).mean("target_scale")
    print(f"DMFT, mean of the per-seed curves: {_halves_of(per_seed)}")


SECTIONS = {"knobs": knobs, "flow": flow, "statistics": statistics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args()
    for name in args.only:
        SECTIONS[name]()


if __name__ == "__main__":
    main()
