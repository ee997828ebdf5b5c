"""What the matmul precision does to a float32 product and to the grokking curves, on this device.

  (1) max |AB - AB_f64| / max |AB_f64| of a 2048^3 float32 product under JAX's own default and
      under each `sweep(matmul_precision=...)` value (float32, tensorfloat32, bfloat16): shows
      whether the backend's default silently uses reduced-precision products;
  (2) the grokking model at the paper's size (D=100, N=500, P=550; 8 alphas x 8 seeds, `--steps`
      steps, network dynamics) swept at each precision: run time and the largest / median
      relative difference of the train and test loss curves from float32's.
On a CPU, XLA computes float32 regardless of the setting, so (2) also reports the differences
that TF32 and bfloat16 products would make, emulated (`lazyrich.core.precision`) on a smaller
grid (D=20, N=64, P=80, 2 alphas, 2,000 steps).

    python benchmarks/matmul_precision.py [--steps 1000]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import lazyrich
from lazyrich.core.chunks import make_run_one
from lazyrich.core.devices import MATMUL_PRECISIONS
from lazyrich.core.precision import emulate_matmul_precision

PAPER = dict(alpha=[0.25, 0.5, 1, 2, 4, 8, 16, 32], seed=list(range(8)), D=100, N=500, P=550,
             n_test=1000, log_every=50, eps=0.02, lr_scale=0.5, dynamics="network",
             progress=False)
EMULATED = dict(D=20, N=64, P=80, n_test=200, steps=2000, log_every=100, eps=0.05,
                lr_scale=0.5, dynamics="network")


def product_errors(size: int = 2048) -> dict[str, float]:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(exact).max()
    errors = {"jax default": float(np.abs(np.asarray(jnp.matmul(a, b)) - exact).max() / scale)}
    for precision in MATMUL_PRECISIONS:
        with jax.default_matmul_precision(precision):
            product = np.asarray(jax.jit(jnp.matmul)(a, b))
        errors[precision] = float(np.abs(product - exact).max() / scale)
    return errors


def compare(curves: dict, label: str) -> None:
    for precision in ("tensorfloat32", "bfloat16"):
        for name in ("train_loss", "test_loss"):
            reference, other = curves["float32"][name], curves[precision][name]
            relative = np.abs(other - reference) / np.abs(reference)
            print(f"{label}{precision} vs float32, {name}: max rel diff {relative.max():.2e}, "
                  f"median {np.median(relative):.2e}")


def emulated_curves() -> dict:
    experiment = lazyrich.get_experiment("grokking")
    params = experiment.defaults(**EMULATED)
    static = {k: v for k, v in params.items() if experiment.parameters[k].static}
    run_one = make_run_one(experiment, static)
    alphas = [0.5, 4.0]
    batched = {k: jnp.asarray(alphas if k == "alpha" else [v] * len(alphas),
                              jnp.result_type(float) if experiment.parameters[k].kind == "float"
                              else jnp.int32)
               for k, v in params.items() if not experiment.parameters[k].static}
    out = {}
    for precision in MATMUL_PRECISIONS:
        curves = jax.jit(jax.vmap(emulate_matmul_precision(run_one, precision)))(batched)[0]
        out[precision] = {k: np.asarray(curves[k]) for k in ("train_loss", "test_loss")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps of the paper-size sweep")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    errors = product_errors()
    print("max |AB - AB_f64| / max |AB_f64| of a 2048^3 float32 product: "
          + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    curves = {}
    for precision in MATMUL_PRECISIONS:
        started = time.perf_counter()
        ds = lazyrich.sweep("grokking", steps=args.steps, matmul_precision=precision, **PAPER)
        curves[precision] = {k: ds[k].values for k in ("train_loss", "test_loss")}
        print(f"{precision}: 64 runs x {args.steps} steps (paper size) in "
              f"{time.perf_counter() - started:.1f} s (incl. compile)")
    compare(curves, "")
    if jax.default_backend() == "cpu":
        compare(emulated_curves(), "emulated (D=20, N=64, P=80, 2,000 steps): ")


if __name__ == "__main__":
    main()
