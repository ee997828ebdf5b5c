"""The grokking DMFT against the N -> infinity simulation over the issue-14 grid: prints, per
(D, eps, P/D, alpha), the relative L2 error of the seed-mean test loss, the relative errors of
the grokking time and of the train-to-test delay, and both run times
(`dmft.grokking_agreement.agreement`).

    python benchmarks/dmft_agreement.py [--dims 100 200] [--alphas 0.25 0.5 1 2 4]
        [--eps 0.02 0.05] [--ratios 3 5] [--seeds 8] [--teacher per_seed|mean]
        [--grid uniform|adaptive] [--horizon 80] [--keep DIR] [--solve n_samples=400 ...]
"""

from __future__ import annotations

import argparse
import os

from dmft.grokking_agreement import GRIDS, TEACHERS, agreement, format_rows, parse_solve_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05])
    parser.add_argument("--ratios", type=float, nargs="+", default=[3.0, 5.0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--teacher", choices=TEACHERS, default="per_seed",
                        help="DMFT at each seed's teacher scale (default) or at their mean")
    parser.add_argument("--grid", choices=GRIDS, default="uniform",
                        help="all alphas on solve's default grid (default) or each alpha on "
                        "its own adaptive grid with the implicit scheme")
    parser.add_argument("--horizon", type=float, default=80.0,
                        help="run length in units of D (time 0..horizon D, 20 horizon steps); "
                        "longer for alphas that grok late")
    parser.add_argument("--keep", metavar="DIR", default=None,
                        help="keep the simulations (sweep stores) and the DMFT solves "
                        "(checkpoints) in DIR as they go: the same command again resumes "
                        "after a kill")
    parser.add_argument("--solve", nargs="*", default=[],
                        help="solve settings as name=value (e.g. n_samples=400); seed=0,1 "
                             "solves two Monte Carlo draws, compares their mean and prints "
                             "their spread")
    args = parser.parse_args()
    settings = parse_solve_settings(args.solve)
    if args.keep is not None:
        os.makedirs(args.keep, exist_ok=True)
    print(f"solve settings: {settings or 'defaults'}", flush=True)
    for dim in args.dims:
        for eps in args.eps:
            for ratio in args.ratios:
                rows = agreement(dim, args.alphas, eps, ratio, args.seeds, args.teacher,
                                 args.grid, args.horizon, keep=args.keep, **settings)
                print(format_rows(dim, eps, ratio, rows), flush=True)


if __name__ == "__main__":
    main()
