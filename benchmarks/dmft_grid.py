"""The grokking DMFT on a non-uniform grid with the implicit scheme against the explicit scheme
on its default uniform grid, side by side in one run: per alpha, the number of time points, the
wall time (compilation included), the iterations, and how far the curves and the times read off
them move (relative L2 of the train and test losses, grokking time and train-to-test delay,
`dmft.grokking_timing`), for each `--slow` setting of `adaptive_times`
(ds <= slow x alpha / eps once the linear fit has settled).

    python benchmarks/dmft_grid.py [--D 100] [--P-over-D 5] [--eps 0.02] [--alphas 2 8]
        [--horizon 100] [--slow 0.005 0.01 0.02] [--samples 400] [--response 16]

`--horizon` is t_max / D (the theory's time s); the reference grid is `default_dt`'s (half the
explicit stability limit).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dmft import grokking
from dmft.grokking_timing import delay, grokking_time


def _solve(alpha: float, args, **grid):
    start = time.perf_counter()
    solved = grokking.solve(alpha, args.eps, args.P_over_D, 1.0, D=args.D,
                            n_samples=args.samples, n_response=args.response, bulk_rank=16,
                            tol=1e-5, progress=False, **grid)
    return solved.isel(alpha=0, eps=0, target_scale=0), time.perf_counter() - start


def _compare(solved, reference) -> list[str]:
    """Relative L2 (train, test) on the reference's times, relative change of the grokking time
    and of the delay."""
    at = reference.time.values
    out = []
    for var in ("train_loss", "test_loss"):
        moved = np.interp(at, solved.time.values, solved[var].values)
        out.append(np.linalg.norm(moved - reference[var].values)
                   / np.linalg.norm(reference[var].values))
    for reading in (lambda d: grokking_time(d.time.values, d.test_loss.values),
                    lambda d: delay(d.time.values, d.train_loss.values, d.test_loss.values)):
        ours, theirs = reading(solved), reading(reference)
        out.append((ours - theirs) / theirs if np.isfinite(theirs) else float("nan"))
    return [f"{100 * value:+.2f}%" if np.isfinite(value) else "-" for value in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--D", type=int, default=100)
    parser.add_argument("--P-over-D", dest="P_over_D", type=float, default=5.0)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--alphas", type=float, nargs="+", default=[2.0, 8.0])
    parser.add_argument("--horizon", type=float, default=100.0, help="t_max / D")
    parser.add_argument("--slow", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--response", type=int, default=16)
    args = parser.parse_args()
    t_max = args.horizon * args.D
    print(f"D={args.D}, P/D={args.P_over_D:g}, eps={args.eps:g}, t_max={t_max:g}, "
          f"M={args.samples}, M_R={args.response}, tol=1e-5")
    print("| alpha | grid | points | seconds | iterations | train L2 | test L2 | grokking time "
          "| delay |")
    print("|---|---|---|---|---|---|---|---|---|")
    for alpha in args.alphas:
        reference, seconds = _solve(alpha, args, t_max=t_max)
        print(f"| {alpha:g} | explicit, uniform ds = {reference.attrs['dt'] / args.D:.3g} | "
              f"{reference.time.size} | {seconds:.1f} | {reference.attrs['iterations']} | "
              f"(reference) | | | |", flush=True)
        for slow in args.slow:
            times = grokking.adaptive_times(t_max, args.D, args.P_over_D, alpha, args.eps,
                                            slow_ds_per_alpha_over_eps=slow)
            solved, seconds = _solve(alpha, args, times=times, scheme="implicit")
            cells = " | ".join(_compare(solved, reference))
            print(f"| {alpha:g} | implicit, adaptive (slow = {slow:g}) | {times.size} | "
                  f"{seconds:.1f} | {solved.attrs['iterations']} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
