"""Throughput of the sweep engine against the authors' one-config-at-a-time loop.

In one process, at the sizes of `--scale` (cpu: a toy size, the demo size and the paper's
D=100, N=500, P=550 on a 64-run grid; gpu: the demo and paper sizes on a 1,024-run grid, large
enough to fill an accelerator; default: from JAX's backend):
  (a) `lazyrich.sweep("grokking", ...)` on an alpha x seed grid (compiled once; timed
      after a warm-up call so compilation is reported separately);
  (b) the same 64 runs done as the authors' notebook does them: one configuration at a time, a
      Python loop over steps calling a jitted full-batch gradient step, with the same logging
      (train and test loss every `log_every` steps); on the gpu scale it runs 8 of the runs
      (its rate is per run and step, so a subset measures it);
  (c) this machine's dense float32 matmul rate, measured here (on accelerators also at the
      reduced precisions `sweep(matmul_precision=...)` offers, and (a) at each of them);
  (m) the engine with `dynamics="moments"`: the same runs through the exact moment reduction
      (paper page Sec. 2b; equal to (a) up to rounding, O(P D^2 + D^3) per step instead of
      O(P N D)).
Prints runs*steps/s of (a), (b) and (m), the ratios a/b and m/b, and the FLOP/s achieved by (a)
(model FLOPs: forward and weight-gradient matmuls, 4 P N D per step) as a fraction of (c).
Then the rank sweep of the RNN experiment (`rnn_rank`; gpu: N=300, 3 tasks x 6 ranks x 8
seeds), engine only, in runs*steps/s.

    python benchmarks/sweep_throughput.py [--scale cpu|gpu] [--runs R] [--paper-steps S]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import lazyrich
from lazyrich.core.devices import MATMUL_PRECISIONS, matmul_precision_context
from lazyrich.views.gallery import DEMO

PAPER = {"D": 100, "N": 500, "P": 550, "n_test": 1000}
TOY = {"D": 10, "N": 32, "P": 40, "n_test": 100}


SCALES = {
    "cpu": {"runs": 64, "demo_steps": 2000, "paper_steps": 200, "loop_runs": None,
            "sizes": ("toy", "demo", "paper"), "matmul_size": 2048,
            "rank": {"N": 64, "tasks": ["2AF"], "ranks": [1, 8, 64], "seeds": [0, 1],
                     "steps": 200}},
    "gpu": {"runs": 1024, "demo_steps": 2000, "paper_steps": 2000, "loop_runs": 8,
            "sizes": ("demo", "paper"), "matmul_size": 8192,
            "rank": {"N": 300, "tasks": ["2AF", "DMS", "CXT"], "ranks": [1, 2, 4, 8, 30, 300],
                     "seeds": list(range(8)), "steps": 1000}},
}


def matmul_flops_per_second(size: int = 2048, repeats: int = 10,
                            precision: str = "float32") -> float:
    """Dense float32 (size x size) @ (size x size) rate of this machine at a matmul precision
    (`lazyrich.core.devices.MATMUL_PRECISIONS`), FLOP/s."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    with matmul_precision_context(precision):
        matmul = jax.jit(jnp.matmul).lower(a, b).compile()
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
           dynamics: str = "network", precision: str = "float32") -> tuple[float, float]:
    """(compile + first run seconds, steady-state seconds) of the engine on the grid."""
    params = dict(alpha=alphas, seed=seeds, steps=steps, log_every=log_every, eps=0.02,
                  lr_scale=0.5, dynamics=dynamics, progress=False, matmul_precision=precision,
                  **size)
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


def rank_sweep(setting: dict, log_every: int = 100) -> tuple[int, float, float]:
    """(runs, compile + first run seconds, steady seconds) of the rnn_rank sweep."""
    params = dict(rank=setting["ranks"], seed=setting["seeds"], N=setting["N"],
                  steps=setting["steps"], log_every=log_every, progress=False)
    runs = len(setting["ranks"]) * len(setting["seeds"]) * len(setting["tasks"])
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        for task in setting["tasks"]:
            lazyrich.sweep("rnn_rank", task=task, **params)
        seconds.append(time.perf_counter() - started)
    return runs, seconds[0], seconds[1]


def default_scale() -> str:
    return "cpu" if jax.default_backend() == "cpu" else "gpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default=default_scale(),
                        help="grid sizes for this kind of device (default: from the backend, "
                             f"here {default_scale()!r})")
    parser.add_argument("--runs", type=int, default=None, help="runs per grid (default: the "
                        "scale's)")
    parser.add_argument("--demo-steps", type=int, default=None)
    parser.add_argument("--paper-steps", type=int, default=None)
    parser.add_argument("--log-every", type=int, default=20)
    parser.add_argument("--sizes", nargs="+", choices=["toy", "demo", "paper"], default=None,
                        help="model sizes to time (default: the scale's)")
    parser.add_argument("--no-rank", action="store_true", help="skip the rnn_rank sweep")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    alphas, seeds = grid(args.runs or scale["runs"])
    runs = len(alphas) * len(seeds)
    precisions = ["float32"] if jax.default_backend() == "cpu" else list(MATMUL_PRECISIONS)
    peaks = {p: matmul_flops_per_second(scale["matmul_size"], precision=p) for p in precisions}
    print(f"scale: {args.scale}; device: {jax.devices()[0].device_kind} "
          f"({jax.default_backend()}, {jax.device_count()} device(s))")
    for precision, peak in peaks.items():
        print(f"(c) matmul rate at {precision}: {peak / 1e9:.1f} GFLOP/s "
              f"({scale['matmul_size']}^3 products)")
    demo_size = {"D": DEMO["D"], "N": DEMO["N"], "P": DEMO["P"], "n_test": 1000}
    sizes = {"toy": TOY, "demo": demo_size, "paper": PAPER}
    print("rates in runs*steps/s; compile = first call minus steady call, seconds; (a)/(c): "
          "achieved FLOP/s of (a) over the matmul rate at the same precision")
    print(f"{'size':<26}{'precision':>14}{'runs':>6}{'steps':>6}{'(a) engine':>12}{'(b) loop':>10}"
          f"{'a/b':>7}{'(m) moments':>12}{'m/b':>7}{'compile':>8}{'(a)/(c)':>9}")
    for name in args.sizes or scale["sizes"]:
        size = sizes[name]
        steps = (args.paper_steps or scale["paper_steps"]) if name == "paper" else \
            (args.demo_steps or scale["demo_steps"])
        loop_alphas, loop_seeds = alphas, seeds
        if scale["loop_runs"] is not None:
            loop_alphas, loop_seeds = alphas[: scale["loop_runs"]], seeds[:1]
        loop_runs = len(loop_alphas) * len(loop_seeds)
        loop_seconds = authors_loop(size, loop_alphas, loop_seeds, steps, args.log_every)
        rate_loop = loop_runs * steps / loop_seconds
        _, moments_seconds = engine(size, alphas, seeds, steps, args.log_every, "moments")
        rate_moments = runs * steps / moments_seconds
        for precision in precisions:
            compile_and_run, seconds = engine(size, alphas, seeds, steps, args.log_every,
                                              precision=precision)
            rate_engine = runs * steps / seconds
            flops = 4 * size["P"] * size["N"] * size["D"] * runs * steps / seconds
            label = f"{name} D={size['D']} N={size['N']} P={size['P']}"
            print(f"{label:<26}{precision:>14}{runs:>6}{steps:>6}{rate_engine:>12.0f}"
                  f"{rate_loop:>10.0f}{rate_engine / rate_loop:>7.1f}{rate_moments:>12.0f}"
                  f"{rate_moments / rate_loop:>7.1f}{compile_and_run - seconds:>8.1f}"
                  f"{100 * flops / peaks[precision]:>8.1f}%")
    if args.no_rank:
        return
    setting = scale["rank"]
    rank_runs, first, steady = rank_sweep(setting)
    print(f"rank sweep (rnn_rank, N={setting['N']}, {len(setting['tasks'])} task(s) x "
          f"{len(setting['ranks'])} ranks x {len(setting['seeds'])} seeds = {rank_runs} runs, "
          f"{setting['steps']} steps): {rank_runs * setting['steps'] / steady:.0f} runs*steps/s, "
          f"compile {first - steady:.1f} s")


if __name__ == "__main__":
    main()
