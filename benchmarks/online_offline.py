"""Train-to-test delay with and without data reuse: the grokking model trained offline (one
fixed set of P examples, reused every step) against online (P fresh examples every step,
`online=True`), same runs otherwise, measured in one run.

Times come from `lazyrich.measures.grokking_times.grokking_times` (half times of the train and
test loss, delay = t_half_test - t_half_train, time = step x lr_scale; NaN where a curve does
not make half its drop), read off the seed-mean curves: online, the train loss of one fresh
batch of P examples of the heavy-tailed target (y = z^2) fluctuates by ~20% from step to step,
which would move a single run's half time by more than the effect. Online, the train loss is
the loss on the current fresh batch, so it is an unbiased estimate of the population loss:
without reuse there is nothing to fit before generalising, and the theory (dmft/README.md,
"Online vs offline") expects no delay, while offline the kernel fit of the fixed set comes
first and the test loss waits for the features.

    python benchmarks/online_offline.py [--dynamics infinite] [--D 40] [--P 200] [--eps 0.05]
        [--alphas 0.5 1 2] [--seeds 4] [--steps 8000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import lazyrich
from lazyrich.measures.grokking_times import grokking_times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dynamics", default="infinite")
    parser.add_argument("--D", type=int, default=40)
    parser.add_argument("--P", type=int, default=200)
    parser.add_argument("--eps", type=float, default=0.05)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8000)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    ds = lazyrich.sweep("grokking", online=[False, True], alpha=args.alphas,
                        seed=list(range(args.seeds)), dynamics=args.dynamics, D=args.D,
                        P=args.P, eps=args.eps, steps=args.steps, log_every=args.steps // 400,
                        progress=False)
    seconds = time.perf_counter() - start
    times = grokking_times(ds.mean("seed"))
    print(f"grokking, dynamics={args.dynamics}, D={args.D}, P={args.P}, eps={args.eps}, "
          f"{args.seeds} seeds, {args.steps} steps at lr_scale {ds.attrs['lr_scale']} "
          f"({seconds:.0f} s); times in step x lr_scale, of the seed-mean curves")
    print(f"{'alpha':>6} | {'offline t_train':>15} {'t_test':>8} {'delay':>8} | "
          f"{'online t_train':>14} {'t_test':>8} {'delay':>8} | delay ratio")
    for alpha in args.alphas:
        off, on = (times.sel(alpha=alpha, online=flag) for flag in (False, True))
        ratio = float(on.delay / off.delay) if np.isfinite(float(off.delay)) else float("nan")
        print(f"{alpha:>6g} | {float(off.t_half_train):>15.0f} {float(off.t_half_test):>8.0f} "
              f"{float(off.delay):>8.0f} | {float(on.t_half_train):>14.0f} "
              f"{float(on.t_half_test):>8.0f} {float(on.delay):>8.0f} | {ratio:.3f}")
    mean = ds.mean("seed")
    gap = np.abs(mean.train_loss / mean.test_loss - 1).mean("step")
    top = mean.train_loss.max("step") / mean.test_loss.max("step")
    print("online the train loss is an unbiased estimate of the population loss, but each curve's "
          "top (its max) is biased up by the batch noise, which moves its half level; train / "
          "test top, and mean |train / test - 1| over the run, offline / online: " + ", ".join(
              f"alpha {a:g}: {float(top.sel(alpha=a, online=False)):.2f} / "
              f"{float(top.sel(alpha=a, online=True)):.2f}, "
              f"{float(gap.sel(alpha=a, online=False)):.2f} / "
              f"{float(gap.sel(alpha=a, online=True)):.2f}" for a in args.alphas))
    final = ds.test_loss.isel(step=-1).mean("seed")
    print("final test loss, offline / online: " + ", ".join(
        f"alpha {a:g}: {float(final.sel(alpha=a, online=False)):.3g} / "
        f"{float(final.sel(alpha=a, online=True)):.3g}" for a in args.alphas))


if __name__ == "__main__":
    main()
