"""A grokking DMFT solve that checks itself: two Monte Carlo draws of half the paths each
(`solve(seed=[0, 1])`, M / 2 sample and M_R / 2 response paths per draw) against one draw of
all of them, side by side in one run. Prints each solve's wall time (compilation excluded:
each is compiled by a first call to tol = 1), iterations, grokking and train half-drop times
per draw, and the draws' spread (`attrs["mc_spread"]`, warned about above 5%).

One draw carries no sign of whether the fixed point self-averages (dmft/README.md: at the
richest cell draws converge to different solutions); two half-size draws cost about as much and
say it.

    python benchmarks/dmft_draws.py [--dims 100] [--samples 1000] [--response 64]
"""

from __future__ import annotations

import argparse
import time
import warnings

ALPHA, EPS, P_OVER_D = 1.0, 0.02, 5.0


def _timed(dim: int, **knobs):
    from dmft import grokking
    from dmft.grokking_cost import adaptive_times

    settings = dict(D=dim, times=adaptive_times(80.0 * dim, dim, P_OVER_D, ALPHA, EPS),
                    scheme="implicit", progress=False, **knobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the warm-up stops at once, unconverged
        grokking.solve(ALPHA, EPS, P_OVER_D, dim / 20, tol=1.0, max_iter=1, **settings)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solved = grokking.solve(ALPHA, EPS, P_OVER_D, dim / 20, tol=1e-5, **settings)
    return solved, time.perf_counter() - start, caught


def main() -> None:
    from dmft.grokking_timing import grokking_time, half_drop_time

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[100])
    parser.add_argument("--samples", type=int, default=1000, help="M of the one-draw solve")
    parser.add_argument("--response", type=int, default=64, help="M_R of the one-draw solve")
    args = parser.parse_args()
    for dim in args.dims:
        print(f"== D={dim}, alpha={ALPHA}, eps={EPS}, P/D={P_OVER_D}, t <= 80 D (adaptive grid)",
              flush=True)
        rows = [("one draw", dict(n_samples=args.samples, n_response=args.response, seed=0)),
                ("two half draws", dict(n_samples=args.samples // 2,
                                        n_response=args.response // 2, seed=[0, 1]))]
        seconds = []
        for label, knobs in rows:
            solved, elapsed, caught = _timed(dim, **knobs)
            seconds.append(elapsed)
            t = solved.time.values
            test = solved.test_loss.values.reshape(-1, t.size)
            train = solved.train_loss.values.reshape(-1, t.size)
            grok = " / ".join(f"{grokking_time(t, c):.0f}" for c in test)
            half = " / ".join(f"{half_drop_time(t, c):.0f}" for c in train)
            spread = (f"; spread {solved.attrs['mc_spread']:.1%}"
                      if "mc_spread" in solved.attrs else "")
            print(f"{label:>15} (M={knobs['n_samples']}, M_R={knobs['n_response']}): "
                  f"{elapsed:5.1f} s, {solved.attrs['iterations']} iterations; grokking {grok}; "
                  f"train half {half}{spread}"
                  + (f"; {len(caught)} warning(s)" if caught else ""), flush=True)
        print(f"two half draws / one draw: {seconds[1] / seconds[0]:.2f}x the time",
              flush=True)


if __name__ == "__main__":
    main()
