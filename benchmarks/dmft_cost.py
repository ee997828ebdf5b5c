"""Cost of the grokking DMFT (dmft/grokking.py) against the number of time points n.

Times one damped fixed-point iteration (compiled, median of repeats) and the whole solve, and
prints the memory `dmft.grokking.estimate_cost` predicts for it (the estimate `solve` checks
before allocating) beside the process's peak RSS, for n doubling.
Prints each quantity with its ratio to the previous n and the fitted exponent of n. Expected:
time per iteration between n^2 (paths, bulk solves at rank r, mixing) and n^3 (response solves,
weight kernels), memory ~ M n r + n^2.

    python benchmarks/dmft_cost.py [--points 50 100 200 400] [--samples 600] [--response 16]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from dmft import grokking


def _iteration_seconds(n: int, samples: int, response: int, rank: int = 48,
                       repeats: int = 3) -> float:
    jax.config.update("jax_enable_x64", True)
    p = {"alpha": 1.0, "eps": 0.02, "lam": 5.0, "ds": 0.2, "dim": 100, "scale": 1.0}
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=samples))
    mixing = jnp.asarray(rng.normal(size=(samples, samples)))
    state = (jnp.zeros((samples, n, 2)), jnp.zeros((n, n, 2, 2)), jnp.zeros((n, n)),
             jnp.zeros((n, n)), jnp.zeros((n, n)), jnp.zeros(n), jnp.zeros((samples, n)))
    step = jax.jit(lambda s: grokking._iterate(s, p, z, mixing, response, min(rank, n)))
    state = jax.block_until_ready(step(state))[0]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(step(state))[0]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--response", type=int, default=16)
    args = parser.parse_args()
    rows = []
    for n in args.points:
        per_iteration = _iteration_seconds(n, args.samples, args.response)
        start = time.perf_counter()
        solved = grokking.solve(1.0, 0.02, 5.0, t_max=20.0 * (n - 1), dt=20.0, D=100,
                                n_samples=args.samples, n_response=args.response, tol=1e-5,
                                progress=False)
        total = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((n, per_iteration, total, solved.attrs["iterations"],
                     grokking.estimate_cost(20.0 * (n - 1), 20.0, D=100,
                                            n_samples=args.samples,
                                            n_response=args.response).memory_bytes / 2**20,
                     peak_mb))
    print(f"M = {args.samples} sample paths, M_R = {args.response} response paths")
    print(f"{'n':>5} {'s/iter':>9} {'ratio':>6} {'exp':>5} {'solve s':>8} {'iters':>5} "
          f"{'est. MiB':>10} {'ratio':>6} {'exp':>5} {'peak RSS MiB':>12}")
    previous = None
    for row in rows:
        n, per_iteration, total, iterations, state_mb, peak_mb = row
        ratio_t = per_iteration / previous[1] if previous else float("nan")
        ratio_m = state_mb / previous[4] if previous else float("nan")
        step = np.log(n / previous[0]) if previous else float("nan")
        print(f"{n:>5} {per_iteration:>9.3f} {ratio_t:>6.2f} {np.log(ratio_t) / step:>5.2f} "
              f"{total:>8.1f} {iterations:>5} {state_mb:>10.1f} {ratio_m:>6.2f} "
              f"{np.log(ratio_m) / step:>5.2f} {peak_mb:>12.0f}")
        previous = row
    logs = np.log([r[0] for r in rows])
    for name, column in (("time per iteration", 1), ("state memory", 4)):
        exponent = np.polyfit(logs[-2:], np.log([r[column] for r in rows[-2:]]), 1)[0]
        print(f"exponent of n over the last doubling, {name}: {exponent:.2f}")


if __name__ == "__main__":
    main()
