"""Throughput of the sweep engine against the authors' one-config-at-a-time loop.

In one process, at three sizes (a toy size, the demo size and the paper's D=100, N=500, P=550):
  (a) `lazyrich.sweep("grokking", ...)` on a 64-run alpha x seed grid (compiled once; timed
      after a warm-up call so compilation is reported separately);
  (b) the same 64 runs done as the authors' notebook does them: one configuration at a time, a
      Python loop over steps calling a jitted full-batch gradient step, with the same logging
      (train and test loss every `log_every` steps);
  (c) this machine's dense float32 matmul rate, measured here;
  (m) the engine with `dynamics="moments"`: the same runs through the exact moment reduction
      (paper page Sec. 2b; equal to (a) up to rounding, O(P D^2 + D^3) per step instead of
      O(P N D)).
Prints runs*steps/s of (a), (b) and (m), the ratios a/b and m/b, and the FLOP/s achieved by (a)
(model FLOPs: forward and weight-gradient matmuls, 4 P N D per step) as a fraction of (c).

    python benchmarks/sweep_throughput.py [--runs 64] [--demo-steps 2000] [--paper-steps 200]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import lazyrich
from lazyrich.views.cli import DEMO

PAPER = {"D": 100, "N": 500, "P": 550, "n_test": 1000}
TOY = {"D": 10, "N": 32, "P": 40, "n_test": 100}


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    """Dense float32 (size x size) @ (size x size) rate of this machine, FLOP/s."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    started = time.perf_counter()
    for _ in range(repeats):
        out = matmul(a, b)
    out.block_until_ready()
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def grid(runs: int) -> tuple[list[float], list[int]]:
    """An alpha x seed grid with `runs` points (alphas 2^-3 .. 2^4)."""
    n_alpha = 8 if runs % 8 == 0 else runs
    alphas = list(2.0 ** np.linspace(-3, 4, n_alpha))
    return alphas, list(range(runs // n_alpha))


def engine(size: dict, alphas, seeds, steps: int, log_every: int,
           dynamics: str = "network") -> tuple[float, float]:
    """(compile + first run seconds, steady-state seconds) of the engine on the grid."""
    params = dict(alpha=alphas, seed=seeds, steps=steps, log_every=log_every, eps=0.02,
                  lr_scale=0.5, dynamics=dynamics, progress=False, **size)
    started = time.perf_counter()
    lazyrich.sweep("grokking", **params)
    first = time.perf_counter() - started
    started = time.perf_counter()
    lazyrich.sweep("grokking", **params)
    return first, time.perf_counter() - started


def authors_loop(size: dict, alphas, seeds, steps: int, log_every: int) -> float:
    """Seconds for the notebook's way: per config, a Python loop of jitted GD steps."""
    dim, width, n_train, n_test = size["D"], size["N"], size["P"], size["n_test"]
    eps, lr_scale = 0.02, 0.5

    def output(weights, x, alpha):
        h = x @ weights.T / jnp.sqrt(dim)
        return alpha * jnp.mean(h + 0.5 * eps * h**2, axis=1)

    def loss(weights, weights0, x, y, alpha):
        return jnp.mean((output(weights, x, alpha) - output(weights0, x, alpha) - y) ** 2) \
            / alpha**2

    @jax.jit
    def update(weights, weights0, x, y, alpha):
        return weights - lr_scale * width * jax.grad(loss)(weights, weights0, x, y, alpha)

    evaluate = jax.jit(loss)
    started = time.perf_counter()
    for alpha in alphas:
        for seed in seeds:
            keys = jax.random.split(jax.random.key(seed), 4)
            beta = jax.random.normal(keys[0], (dim,))
            x = jax.random.normal(keys[1], (n_train, dim))
            xt = jax.random.normal(keys[2], (n_test, dim))
            y, yt = (x @ beta) ** 2 / dim, (xt @ beta) ** 2 / dim
            weights0 = jax.random.normal(keys[3], (width, dim))
            weights = weights0
            train_losses, test_losses = [], []
            for step in range(steps):
                weights = update(weights, weights0, x, y, alpha)
                if (step + 1) % log_every == 0:
                    train_losses.append(float(alpha**2 * evaluate(weights, weights0, x, y, alpha)))
                    test_losses.append(float(alpha**2 * evaluate(weights, weights0, xt, yt,
                                                                 alpha)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--demo-steps", type=int, default=2000)
    parser.add_argument("--paper-steps", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=20)
    args = parser.parse_args()
    alphas, seeds = grid(args.runs)
    runs = len(alphas) * len(seeds)
    peak = matmul_flops_per_second()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"float32 matmul rate (c): {peak / 1e9:.1f} GFLOP/s")
    demo_size = {"D": DEMO["D"], "N": DEMO["N"], "P": DEMO["P"], "n_test": 1000}
    print("rates in runs*steps/s; compile = first call minus steady call, seconds")
    print(f"{'size':<26}{'runs':>5}{'steps':>6}{'(a) engine':>11}{'(b) loop':>10}{'a/b':>6}"
          f"{'(m) moments':>12}{'m/b':>6}{'compile':>8}{'(a)/(c)':>9}")
    for name, size, steps in (("toy", TOY, args.demo_steps), ("demo", demo_size, args.demo_steps),
                              ("paper", PAPER, args.paper_steps)):
        compile_and_run, seconds = engine(size, alphas, seeds, steps, args.log_every)
        _, moments_seconds = engine(size, alphas, seeds, steps, args.log_every, "moments")
        loop_seconds = authors_loop(size, alphas, seeds, steps, args.log_every)
        rate_engine, rate_loop, rate_moments = (runs * steps / t for t in
                                                (seconds, loop_seconds, moments_seconds))
        flops = 4 * size["P"] * size["N"] * size["D"] * runs * steps / seconds
        label = f"{name} D={size['D']} N={size['N']} P={size['P']}"
        print(f"{label:<26}{runs:>5}{steps:>6}{rate_engine:>11.0f}{rate_loop:>10.0f}"
              f"{rate_engine / rate_loop:>6.1f}{rate_moments:>12.0f}"
              f"{rate_moments / rate_loop:>6.1f}{compile_and_run - seconds:>8.1f}"
              f"{100 * flops / peak:>8.0f}%")


if __name__ == "__main__":
    main()
