"""Spearman correlation + p-value: provenance.spearman vs scipy.stats.spearmanr vs the sort floor.

The query test's cost at the paper's scale (Kuditipudi et al. 2025: 10^5 - 10^7 training examples,
40+ suspect models) is ranking. Three timings per size n, on the same float64 arrays (untied):

  floor     two `numpy.argsort` calls (x and y): no rank correlation can avoid sorting both;
  ours      `provenance.spearman(x, y)` (ranks with ties, rho, Student-t log p-value);
  scipy     `scipy.stats.spearmanr(x, y)`.

and the batched case: one training order (n,) against 40 models' log-likelihoods (40, n), ours in
one call vs 40 scipy calls (and vs the floor of 41 argsorts). The largest size is run again in
float32 (likelihoods arrive as float32 from GPUs), against the floor of two float32 argsorts;
float32 normal draws tie often at 1e7, and scipy and we both rank them as ties.
Timings are the best of `--repeats` interleaved runs (the machine may be shared), so ratios
compare like with like. Also prints the largest |rho - rho_scipy| and relative p-value
difference. Writes nothing but stdout unless `--json PATH` is given. Targets (issues 5, 16):
ours / floor <= 1.5 in float64 and float32, and ours / scipy <= 1.

First calls: the time of the first call on a length not seen before minus the second call, for
the asymptotic method (numpy: nothing to compile) and the permutation method (one JAX block,
compiled once per length bucket), printed separately.

`--conventions` prints instead how often the two two-sided conventions of the exact Spearman
p-value ("absolute" and scipy's "doubled") differ on 1,000 random tied cases, n = 4..7.

    python benchmarks/provenance_stats.py [--quick] [--repeats 3] [--clock wall|cpu] [--json F]
    python benchmarks/provenance_stats.py --conventions
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy import stats

import provenance

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def best_times(functions: dict, repeats: int, clock: str = "wall") -> dict[str, float]:
    """Best time (s) of each function over `repeats` rounds, run interleaved, on the clock
    `clock` (--clock): "cpu" (this process's CPU time: every timed computation here is
    single-threaded, and on a shared machine wall time also counts other jobs' time slices)
    or "wall"."""
    times = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = CLOCKS[clock]()
            function()
            times[name] = min(times[name], CLOCKS[clock]() - start)
    return times


def single(n: int, repeats: int, rng: np.random.Generator, dtype=np.float64,
           clock: str = "wall") -> dict:
    x = rng.normal(size=n).astype(dtype)
    y = (0.01 * x + rng.normal(size=n)).astype(dtype)
    times = best_times({"floor": lambda: (np.argsort(x), np.argsort(y)),
                        "ours": lambda: provenance.spearman(x, y),
                        "scipy": lambda: stats.spearmanr(x, y, alternative="greater")}, repeats,
                       clock)
    ours, theirs = provenance.spearman(x, y), stats.spearmanr(x, y, alternative="greater")
    suffix = "" if dtype == np.float64 else f" {np.dtype(dtype).name}"
    return {"case": f"n={n:.0e}{suffix}", **times,
            "rho_error": abs(ours.statistic - theirs.statistic),
            "p_relative_error": abs(ours.pvalue / theirs.pvalue - 1.0)}


def batched(models: int, n: int, repeats: int, rng: np.random.Generator,
            clock: str = "wall") -> dict:
    order = rng.permutation(n).astype(np.float64)
    loglik = 1e-3 * order / n + rng.normal(size=(models, n))
    times = best_times({
        "floor": lambda: (np.argsort(order), np.argsort(loglik, axis=-1)),
        "ours": lambda: provenance.spearman(order, loglik),
        "scipy": lambda: [stats.spearmanr(order, row, alternative="greater") for row in loglik],
    }, repeats, clock)
    ours = provenance.spearman(order, loglik)
    theirs = [stats.spearmanr(order, row, alternative="greater") for row in loglik]
    return {"case": f"{models} models x n={n:.0e}", **times,
            "rho_error": float(np.max(np.abs(ours.statistic - [t.statistic for t in theirs]))),
            "p_relative_error": float(np.max(np.abs(ours.pvalue / [t.pvalue for t in theirs]
                                                    - 1.0)))}


def first_calls(rng: np.random.Generator) -> list[tuple[str, float]]:
    """Extra time of the first call on a new length (compilation), per method."""
    out = []
    for method, n, options in (("asymptotic", 100_003, {}),
                               ("permutation", 1_003, {"n_permutations": 1000})):
        x, y = rng.normal(size=(2, n))
        times = []
        for _ in range(2):
            start = time.perf_counter()
            provenance.spearman(x, y, method=method, **options)
            times.append(time.perf_counter() - start)
        out.append((f"{method} (n={n})", times[0] - times[1]))
    return out


def conventions(cases: int = 1000, seed: int = 0) -> dict:
    """Fraction of tied small-n cases where the exact two-sided p differs between conventions."""
    rng = np.random.default_rng(seed)
    gaps = []
    while len(gaps) < cases:
        n = int(rng.integers(4, 8))
        x, y = rng.integers(0, 3, n).astype(float), rng.integers(0, 4, n).astype(float)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        p = [provenance.spearman(x, y, method="exact", alternative="two-sided",
                                 two_sided=convention).pvalue
             for convention in ("absolute", "doubled")]
        gaps.append(abs(p[0] - p[1]))
    gaps = np.array(gaps)
    row = {"cases": cases, "differ": float(np.mean(gaps > 1e-12)), "largest": float(gaps.max())}
    print(f"exact two-sided Spearman p, {cases} tied cases (n = 4..7): conventions differ in "
          f"{row['differ']:.0%} of cases, by up to {row['largest']:.2f}")
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="n = 1e4, 1e5; 40 x 1e5")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="time by wall clock or by this process's CPU time")
    parser.add_argument("--conventions", action="store_true",
                        help="compare the two-sided conventions of the exact p instead")
    args = parser.parse_args(argv)
    if args.conventions:
        return [conventions()]
    sizes = [10**4, 10**5] if args.quick else [10**5, 10**6, 10**7]
    batch_n = 10**5 if args.quick else 10**6
    rng = np.random.default_rng(0)
    provenance.spearman(np.arange(10.0), np.arange(10.0)[::-1])  # import-time work out of timing
    rows = [single(n, args.repeats, rng, clock=args.clock) for n in sizes]
    rows.append(single(sizes[-1], args.repeats, rng, np.float32, args.clock))
    rows.append(batched(40, batch_n, max(1, args.repeats - 1), rng, args.clock))
    print(f"{'case':<22}{'floor s':>10}{'ours s':>10}{'scipy s':>10}{'ours/floor':>12}"
          f"{'ours/scipy':>12}{'|drho|':>10}{'dp/p':>10}")
    for row in rows:
        print(f"{row['case']:<22}{row['floor']:>10.4f}{row['ours']:>10.4f}{row['scipy']:>10.4f}"
              f"{row['ours'] / row['floor']:>12.2f}{row['ours'] / row['scipy']:>12.2f}"
              f"{row['rho_error']:>10.1e}{row['p_relative_error']:>10.1e}")
    for case, seconds in first_calls(rng):
        print(f"first call on a new length, {case}: {seconds:.3f} s more than the second")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)
    return rows


if __name__ == "__main__":
    main()
