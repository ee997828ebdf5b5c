"""Solve `lazyrich compare`'s batched grokking DMFT (D = 6: alpha 1 and 1000 x two teacher
scales, 61 times, M = 400, M_R = 32) several times in one process and print each solve's time.

It exists because this solve once hung forever on 2 CPU cores (jaxlib's batched LAPACK calls
waiting on XLA's thread pool, see dmft/triangular.py); a run that prints every line is the check.

    python benchmarks/dmft_batched_repeat.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dmft import grokking


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times = np.linspace(0, 20, 61)
    for repeat in range(args.repeats):
        start = time.perf_counter()
        solved = grokking.solve([1.0, 1000.0], 0.02, 2.5, 0.5, D=6, times=times,
                                scheme="explicit", target_scale=[1.3174691905877796,
                                                                 0.2833319145956322],
                                tol=1e-5, progress=False, n_samples=400, n_response=32)
        print(f"solve {repeat}: {time.perf_counter() - start:.1f} s, "
              f"{solved.attrs['iterations']} iterations", flush=True)


if __name__ == "__main__":
    main()
