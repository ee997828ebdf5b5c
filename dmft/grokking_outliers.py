"""The bulk's test-point fluctuation, measured in the exact N -> infinity dynamics (issue 14).

The DMFT's population test loss (`grokking._statistics`, eq. G11) keeps the bulk columns of
the neuron covariance (the directions other than beta_hat, the linear part and the spike
column) only through their mean trace tau: on a fresh test point x ~ N(0, I) the bulk's share
of the output, (alpha eps / 2) x^T B x / D with B = Q (Cov - Cov_0) Q, has variance

    F = 2 (alpha eps / 2)^2 tr(B^2) / D^2        (Gaussian x: Var(x^T B x) = 2 tr(B^2)),

which the closure drops as O(1 / D): for a bulk spread over its D dimensions tr(B^2) ~
tr(B)^2 / D. This module measures F, its isotropic share F_iso = 2 (alpha eps / 2)^2 tr(B)^2 /
(rank(B) D^2) and B's top eigenvalues per D in `lazyrich`'s exact moment dynamics
(`dynamics="infinite"`): where a few outlier modes carry the bulk (eigenvalues growing like D),
F - F_iso does not fall with D and the dropped term is O(1). `benchmarks/dmft_diagnosis.py
--only outliers` prints it over D.

The same states measure a second dropped term, the linear part's component along beta_hat.
The DMFT's linear field h = v . x / sqrt(D) (v = alpha dm) is a Gaussian process independent of
z = beta_hat . x on every path and on a test point (G6, G11); the exact h has the component
c z with c = v . beta_hat / sqrt(D). That is O(1 / sqrt D) (and dropped) if v's beta_hat
component is O(1), as for a vector spread over D directions (its share (v . beta_hat)^2 / |v|^2
is then ~1 / D), but O(1) if v aligns with beta_hat. The target b z^2 is even in z (E[z^3] = 0),
so c enters the test loss mainly as c^2 (the term linear in c carries eps^2 nu Cov(h, omega)):
`linear_beta2` = c^2 against `linear_norm2` = |v|^2 / D and the test loss say which;
`--only linear` prints it over D.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

TOP_MODES = 3     # B's largest eigenvalues reported


def _orthonormal_columns(vectors: jax.Array) -> jax.Array:
    """(D, k) orthonormal basis of the span of `vectors`' k columns (Gram-Schmidt; a column
    already in the span of the earlier ones contributes a zero column)."""
    basis = []
    for column in vectors.T:
        for earlier in basis:
            column = column - (earlier @ column) * earlier
        norm = jnp.linalg.norm(column)
        basis.append(jnp.where(norm > 1e-6 * jnp.linalg.norm(vectors), column / norm, 0.0))
    return jnp.stack(basis, axis=1)


def bulk_fluctuation(deviation: dict, beta: jax.Array, alpha: float, eps: float) -> dict:
    """F, F_iso, the bulk's mean share tau and B's top eigenvalues / D of one moment state.

    B is the covariance change Cov - Cov_0 outside the three directions the DMFT's test loss
    keeps exactly: beta_hat, the linear part m and the spike column (approximated by
    Cov beta_hat: the spike column U beta_hat is not recoverable from the moments).

    Args:
        deviation: the moment dynamics' deviations dm (D,) and dS (D, D) from the start
            (`lazyrich.experiments.grokking`, dynamics="infinite": m_0 = 0, so
            Cov - Cov_0 = dS - dm dm^T).
        beta: (D,) teacher direction; alpha, eps: output scale and quadratic coefficient.

    Returns:
        {"fluctuation": F, "isotropic": F_iso, "tau": (alpha eps / 2) tr(B) / D,
         "top": (TOP_MODES,) largest eigenvalues of B over D, largest last,
         "linear_beta2": (v . beta_hat)^2 / D, "linear_norm2": |v|^2 / D with v = alpha dm};
        scalars in the test loss's units (squared output).
    """
    dim = beta.shape[0]
    change = deviation["dS"] - jnp.outer(deviation["dm"], deviation["dm"])
    spike = beta / jnp.linalg.norm(beta)
    kept = _orthonormal_columns(jnp.stack([spike, deviation["dm"], change @ spike], axis=1))
    keep = jnp.eye(dim, dtype=change.dtype) - kept @ kept.T
    bulk = keep @ change @ keep
    weight = 2 * (alpha * eps / 2) ** 2 / dim**2
    rank = dim - jnp.sum(jnp.any(kept != 0, axis=0))
    return {"fluctuation": weight * jnp.sum(bulk * bulk),
            "isotropic": weight * jnp.trace(bulk) ** 2 / rank,
            "tau": alpha * eps / 2 * jnp.trace(bulk) / dim,
            "top": jnp.linalg.eigvalsh(bulk)[-TOP_MODES:] / dim,
            "linear_beta2": (alpha * deviation["dm"] @ spike) ** 2 / dim,
            "linear_norm2": alpha**2 * deviation["dm"] @ deviation["dm"] / dim}


def measure(D: int, alpha: float, eps: float, P_over_D: float, horizon: float = 80.0,
            seeds=range(8), n_logs: int = 20) -> xr.Dataset:
    """`bulk_fluctuation` along the exact N -> infinity dynamics, seed by seed.

    Args:
        D: input dimension; P = round(P_over_D D) training points; lr_scale = D / 20 and
            20 horizon steps (time 0..horizon D), the agreement tables' protocol.
        alpha, eps: the run's output scale and quadratic coefficient.
        seeds: simulation seeds (the same draws as `lazyrich.sweep(seed=...)`).
        n_logs: equally spaced logged times (must divide the 20 horizon steps).
        Seeds run one after another (one D x D state in memory at a time).

    Returns:
        Dataset over (seed, time) with fluctuation, isotropic, tau, linear_beta2,
        linear_norm2, test_loss_population, train_loss, and top over (seed, time, mode); time
        in simulation units.

    Raises:
        ValueError naming the argument for a non-positive or non-finite alpha, P_over_D,
        horizon, a negative eps, no seeds, or a logging that does not divide the run;
        MemoryEstimateError before allocating when D x D states would not fit.
    """
    import lazyrich
    from lazyrich.core.checks import require_memory
    from lazyrich.experiments import grokking as experiment

    for name, value in {"alpha": alpha, "P_over_D": P_over_D, "horizon": horizon}.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed, e.g. seeds=range(8)")
    steps = 20 * horizon
    if (not isinstance(D, int) or D < 3 or not float(steps).is_integer() or n_logs < 1
            or int(steps) % n_logs):
        raise ValueError(f"need an integer D >= 3 and n_logs dividing the 20 horizon = "
                         f"{steps:g} steps; got D={D!r}, horizon={horizon!r}, n_logs={n_logs!r}")
    # per seed: the moment state's three (D, D) matrices, the step's temporaries and B (~12)
    require_memory(12 * 8 * D**2 + 8 * P_over_D * D**2, f"bulk fluctuation at D={D}",
                   "lower D=")
    every = int(steps) // n_logs
    params = lazyrich.get_experiment("grokking").defaults(
        D=D, P=int(round(P_over_D * D)), N=1, n_test=10, alpha=alpha, eps=eps, lr_scale=D / 20,
        dynamics="infinite")

    @jax.jit
    def run(key):
        def logged(state, _):
            state = jax.lax.fori_loop(0, every, lambda i, s: experiment.step(s, params), state)
            metrics = experiment.metrics(state, params)
            return state, {**bulk_fluctuation(state["deviation"], state["data"]["beta"],
                                              alpha, eps),
                           "test_loss_population": metrics["test_loss_population"],
                           "train_loss": metrics["train_loss"]}

        return jax.lax.scan(logged, experiment.init(key, params), None, length=n_logs)[1]

    runs = [jax.device_get(run(jax.random.key(int(s)))) for s in seeds]
    time = np.arange(1, n_logs + 1) * every * D / 20
    variables = {name: (("seed", "time") + (("mode",) if name == "top" else ()),
                        np.stack([np.asarray(r[name], np.float64) for r in runs]))
                 for name in runs[0]}
    return xr.Dataset(variables, coords={"seed": seeds, "time": time},
                      attrs={"D": D, "alpha": alpha, "eps": eps, "P_over_D": P_over_D})
