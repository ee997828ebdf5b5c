"""Empirical NTK + kernel alignment of the 2AF RNN: chunked jvp/vjp kernel vs a per-output loop.

The setting of the paper's 2AF measurement (Liu et al. 2024; paper page `connectivity.md`
Sec. 3): 8 steps x 32 trials x 3 outputs = 768 outputs, kernel w.r.t. W_h (N x N, N = 300:
90,000 parameters). Two ways to get K0, KT and KA(K0, KT) for a pair of weight sets:

  (a) `lazyrich.measures.metrics.empirical_ntk` (as `rnn_rank` uses it): output rows in chunks
      of about 2^23 Jacobian entries, reverse mode for the rows and forward mode for J J_c^T,
      one jitted program; the full 768 x 90,000 Jacobian is never held;
  (b) what the authors' script does: a Python loop over the 768 outputs, one gradient w.r.t.
      W_h each (a jitted JAX gradient here, compiled once), stacked into J (768 x 90,000), then
      K = J J^T.

Prints the seconds of each (after a warm-up call, so compilation is excluded), their ratio b/a,
and the largest relative difference between the two kernels.

    python benchmarks/ntk_alignment.py [--scale cpu|gpu] [--N 300] [--batch B] [--repeats R]

`--scale` (default: from JAX's backend) sets the trials: 32 on cpu (the paper's), 128 on gpu
(3,072 outputs, enough work to fill an accelerator).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import lazyrich
from lazyrich.experiments import rnn_rank
from lazyrich.measures.alignment import kernel_alignment


def weight_pair(N: int, batch: int):
    """Initial weights (rank 30) and perturbed 'trained' weights, and the 2AF inputs."""
    experiment = lazyrich.get_experiment("rnn_rank")
    params = experiment.defaults(N=N, rank=min(30, N), batch_size=batch, eval_batches=1)
    state = experiment.init(jax.random.key(0), params)
    noise = jax.random.normal(jax.random.key(1), (N, N)) * 0.5 / np.sqrt(N)
    trained = {**state["weights"], "W_h": state["weights"]["W_h"] + noise}
    return state["weights"], trained, state["eval"]["inputs"]


def chunked(weights0, weights, inputs):
    """(a): both kernels and their alignment in one jitted program."""
    k0 = rnn_rank.recurrent_ntk(weights0, inputs, 1.0)
    k = rnn_rank.recurrent_ntk(weights, inputs, 1.0)
    return kernel_alignment(k0, k), k


def loop_kernel(weights, inputs) -> np.ndarray:
    """(b): one gradient per output (t, b, k), stacked, then J J^T."""
    def output(W_h, t, b, k):
        return rnn_rank.run({**weights, "W_h": W_h}, inputs, 1.0)[1][t, b, k]
    gradient = jax.jit(jax.grad(output))
    steps, batch = inputs.shape[:2]
    rows = [np.asarray(gradient(weights["W_h"], t, b, k)).ravel()
            for t in range(steps) for b in range(batch) for k in range(3)]
    jacobian = np.stack(rows)
    return jacobian @ jacobian.T


def per_output_loop(weights0, weights, inputs):
    k0, k = loop_kernel(weights0, inputs), loop_kernel(weights, inputs)
    return float(np.sum(k0 * k) / np.linalg.norm(k0) / np.linalg.norm(k)), k


def timed(fn, repeats: int) -> tuple[float, tuple]:
    result = fn()
    jax.block_until_ready(result)
    started = time.perf_counter()
    for _ in range(repeats):
        result = jax.block_until_ready(fn())
    return (time.perf_counter() - started) / repeats, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scales = {"cpu": {"batch": 32, "repeats": 2}, "gpu": {"batch": 128, "repeats": 3}}
    default_scale = "cpu" if jax.default_backend() == "cpu" else "gpu"
    parser.add_argument("--scale", choices=list(scales), default=default_scale,
                        help=f"sizes for this kind of device (default here: {default_scale})")
    parser.add_argument("--N", type=int, default=300, help="recurrent units")
    parser.add_argument("--batch", type=int, default=None,
                        help="trials (outputs = 8 x batch x 3; default: the scale's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls of each")
    args = parser.parse_args()
    args.batch = args.batch or scales[args.scale]["batch"]
    args.repeats = args.repeats or scales[args.scale]["repeats"]
    weights0, weights, inputs = weight_pair(args.N, args.batch)
    compiled = jax.jit(chunked)
    seconds_a, (alignment_a, kernel_a) = timed(lambda: compiled(weights0, weights, inputs),
                                               args.repeats)
    seconds_b, (alignment_b, kernel_b) = timed(lambda: per_output_loop(weights0, weights,
                                                                       inputs), args.repeats)
    difference = float(np.max(np.abs(np.asarray(kernel_a) - kernel_b)) / np.max(np.abs(kernel_b)))
    outputs = 8 * args.batch * 3
    print(f"2AF NTK: {outputs} outputs x W_h {args.N}x{args.N} ({args.N**2} parameters), "
          f"K0 and KT + KA, {jax.default_backend()}, {jnp.result_type(float)}, "
          f"scale {args.scale}")
    print(f"(a) chunked jvp/vjp kernel (lazyrich):  {seconds_a:8.2f} s   "
          f"KA = {float(alignment_a):.6f}")
    print(f"(b) per-output gradient loop (authors): {seconds_b:8.2f} s   KA = {alignment_b:.6f}")
    print(f"ratio b/a = {seconds_b / seconds_a:.2f}   "
          f"max |K_a - K_b| / max |K_b| = {difference:.1e}")


if __name__ == "__main__":
    main()
