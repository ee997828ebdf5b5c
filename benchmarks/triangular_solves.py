"""The DMFT's triangular solves: `dmft.triangular.blocked_solve_lower` (jax.numpy, blocked
forward substitution; what the DMFT uses on the CPU) against
`jax.scipy.linalg.solve_triangular` (LAPACK trsm on CPU, cuBLAS on GPU), on this device, side
by side in one run.

Part 1, the solves alone at the shapes the DMFT iteration uses (n time points, M paths, rank r):
  kernels   one (2n x 2n) unit lower-triangular system with 2n right-hand sides (weight kernel);
  bulk      M systems (32 x 32) with r right-hand sides each, vmapped (one block of the bulk march);
  divide    one (2n x 2n) right division rhs L^-1 (a path's response solve).
Prints the best-of-3 seconds of each (compiled, warm), their ratio ours / library, and the
largest relative difference of the solutions.

Part 2, the whole solve: `dmft.grokking.solve` on the rich corner's grid (D, alpha = 0.25,
eps = 0.05, P/D = 5, adaptive grid, implicit scheme; `--max-iter` iterations) with every
triangular solve of the iteration done each way: first call (compilation included) and a second,
warm call, seconds per iteration, and the largest relative difference of the test-loss curves.
(`triangular.uses_library` picks between the two for the DMFT: the library off the CPU.)
On CPU the library variant of part 2 is skipped unless `--library-on-cpu`: with two or fewer
cores jaxlib's batched LAPACK calls can deadlock XLA's thread pool (dmft/triangular.py says how).

    python benchmarks/triangular_solves.py [--points 801] [--samples 4000] [--response 64]
        [--rank 16] [--D 100] [--max-iter 4] [--dtype float64] [--library-on-cpu]
"""

import argparse
import time

import jax
import numpy as np
from dmft_cost import _best_seconds as best_seconds  # benchmarks/ is the script's path

from dmft import grokking, triangular
from dmft.grokking_cost import adaptive_times


def library_solve_lower(lower, rhs, unit_diagonal: bool = False):
    """`triangular.solve_lower`'s contract through `jax.scipy.linalg.solve_triangular`."""
    return jax.scipy.linalg.solve_triangular(lower, rhs, lower=True,
                                             unit_diagonal=unit_diagonal)


def _lower(rng, m: int, batch: tuple = ()) -> np.ndarray:
    """Well-conditioned lower-triangular matrices (batch..., m, m): unit diagonal plus small
    strictly-lower entries."""
    noise = rng.normal(size=batch + (m, m)) / np.sqrt(m)
    return np.tril(noise, -1) + np.eye(m)


def solve_timings(points: int, samples: int, rank: int, dtype) -> list[tuple]:
    """[(case, ours s, library s, max relative difference)] for part 1."""
    rng = np.random.default_rng(0)
    m = 2 * points
    kernel_lower = jax.device_put(_lower(rng, m).astype(dtype))
    kernel_rhs = jax.device_put(np.eye(m, dtype=dtype))
    bulk_lower = jax.device_put(_lower(rng, 32, (samples,)).astype(dtype))
    bulk_rhs = jax.device_put(rng.normal(size=(samples, 32, rank)).astype(dtype))
    divide_rhs = jax.device_put(np.tril(rng.normal(size=(m, m))).astype(dtype))
    cases = {
        "kernels": (lambda solve: lambda a, b: solve(a, b, True), kernel_lower, kernel_rhs),
        "bulk": (lambda solve: jax.vmap(solve), bulk_lower, bulk_rhs),
        "divide": (lambda solve: lambda b, a: solve(a.T[::-1, ::-1], b.T[::-1])[::-1].T,
                   divide_rhs, kernel_lower),
    }
    rows = []
    for name, (make, *args) in cases.items():
        ours, library = make(triangular.blocked_solve_lower), make(library_solve_lower)
        x, y = (np.asarray(jax.jit(f)(*args), np.float64) for f in (ours, library))
        rows.append((name, best_seconds(ours, *args), best_seconds(library, *args),
                     float(np.max(np.abs(x - y)) / np.max(np.abs(y)))))
    return rows


def _solve(dim: int, settings: dict, max_iter: int):
    """The rich corner's solve at D = dim, timed cold (compilation included) and warm."""
    times = adaptive_times(80.0 * dim, dim, 5.0, 0.25, 0.05)
    call = dict(D=dim, times=times, scheme="implicit", max_iter=max_iter, tol=1e-12,
                progress=False, **settings)
    grokking._compiled_iteration.cache_clear()   # compile for the solves patched in now
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        curves = grokking.solve(0.25, 0.05, 5.0, dim / 20, **call)
        seconds.append(time.perf_counter() - start)
    return curves, seconds


def whole_solve(dim: int, settings: dict, max_iter: int, library: bool) -> dict:
    """{implementation: (cold s, warm s per iteration, iterations, curves)} for part 2."""
    import warnings
    results = {}
    for name in ("ours", "library") if library else ("ours",):
        original = triangular.uses_library
        triangular.uses_library = (lambda use: lambda: use)(name == "library")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")    # max_iter is reached on purpose
                curves, (cold, warm) = _solve(dim, settings, max_iter)
        finally:
            triangular.uses_library = original
            grokking._compiled_iteration.cache_clear()
        iterations = int(curves.attrs["iterations"])
        results[name] = (cold, warm / iterations, iterations, curves)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=801)
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--response", type=int, default=64)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--D", type=int, default=100)
    parser.add_argument("--max-iter", type=int, default=4)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    parser.add_argument("--library-on-cpu", action="store_true")
    args = parser.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    backend = jax.default_backend()
    print(f"backend {backend}, device {jax.devices()[0].device_kind}, {args.dtype}")
    print(f"part 1: the solves alone, n = {args.points}, M = {args.samples}, r = {args.rank}")
    print(f"{'case':>8} {'ours s':>9} {'library s':>10} {'ours/lib':>9} {'max rel diff':>13}")
    for name, ours, library, difference in solve_timings(args.points, args.samples, args.rank,
                                                          np.dtype(args.dtype)):
        print(f"{name:>8} {ours:>9.4f} {library:>10.4f} {ours / library:>9.2f} "
              f"{difference:>13.1e}", flush=True)
    library = backend != "cpu" or args.library_on_cpu
    settings = {"n_samples": args.samples, "n_response": args.response,
                "bulk_rank": args.rank, "dtype": args.dtype}
    results = whole_solve(args.D, settings, args.max_iter, library)
    n = results["ours"][3].time.size
    print(f"part 2: grokking.solve, D = {args.D}, alpha 0.25, eps 0.05, P/D 5, adaptive grid "
          f"({n} points), M = {args.samples}, M_R = {args.response}, r = {args.rank}"
          + ("" if library else "; library variant skipped on CPU (--library-on-cpu)"))
    print(f"{'solves':>8} {'cold s':>8} {'warm s/iter':>12} {'iters':>6}")
    for name, (cold, per_iteration, iterations, _) in results.items():
        print(f"{name:>8} {cold:>8.2f} {per_iteration:>12.4f} {iterations:>6}")
    if library:
        ours, other = (results[k][3].test_loss.values for k in ("ours", "library"))
        print(f"warm ours / library per iteration: "
              f"{results['ours'][1] / results['library'][1]:.2f}; test-loss curves differ by "
              f"{np.max(np.abs(ours - other)) / np.max(np.abs(other)):.1e} (max relative)")


if __name__ == "__main__":
    main()
