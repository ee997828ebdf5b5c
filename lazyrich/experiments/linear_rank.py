"""Experiment `linear_rank`: a two-layer linear student of a linear teacher, from a rank-r init.

Liu et al. (ICLR 2024), Sec. 3, Theorem 1 and Prop. 1; paper page `connectivity.md` Sec. 4.
The student f(x) = W2 W1 F x (W1: h x d, W2: 1 x h) sees features z = F x of whitened inputs
x ~ N(0, I_d), F = diag(kappa, ..., kappa, 1, ..., 1) (top half kappa; kappa = 1: isotropic), and
learns y = w^T x, w uniform on the unit sphere (one task per `task_seed`), by gradient descent on
the population loss L = E[(f - y)^2] / 2 = ||F W1^T W2^T - w||^2 / 2. Both layers start at
Frobenius norm sigma:

- "random": W1 = the rank-r truncation of a Gaussian matrix (shared by every rank of a seed)
  rescaled to norm sigma, W2 Gaussian rescaled to norm sigma;
- "aligned": W1 = sigma u b^T, W2 = sigma u^T, b the unit direction of F^-1 w (Prop. 1: rank 1
  and KA = 1);
- "partial": W1 = sigma Q P / sqrt(d/2), Q random orthonormal (h x d), P the projection on the
  top-kappa half of the features (aligned with the rank-d/2 truncation of F), W2 Gaussian.

The NTK on the inputs is K(x, x') = x^T F M F x' with M = W1^T W1 + ||W2||^2 I, so the
population kernel alignment is the Frobenius cosine of the d x d matrices F M(0) F and
F M(t) F; `dmft.linear` gives its small-sigma limit in closed form.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lazyrich.core import init as initialisation
from lazyrich.core.sampling import normal_blocks
from lazyrich.experiments.base import (
    SEED_MAXIMUM,
    Experiment,
    Output,
    Parameter,
    register,
    step_parameters,
)
from lazyrich.measures.alignment import kernel_alignment

INITS = ("random", "aligned", "partial")
TASK_STREAM = 1  # folded into key(task_seed) so tasks and weights never share random numbers

PARAMETERS = {
    "d": Parameter(20, "int", static=True, minimum=2, doc="input dimension"),
    "h": Parameter(50, "int", static=True, minimum=1, doc="hidden width"),
    "sigma": Parameter(1e-3, "float", static=False, minimum=0, exclusive_minimum=True,
                       doc="Frobenius norm of each layer at initialisation"),
    "rank": Parameter(20, "int", static=False, minimum=1,
                      doc="rank of W1(0) for init='random' (<= min(d, h))"),
    "task_seed": Parameter(0, "int", static=False, minimum=0, maximum=SEED_MAXIMUM,
                           doc="seed of the task direction w (uniform on the unit sphere)"),
    "kappa": Parameter(1.0, "float", static=False, minimum=0, exclusive_minimum=True,
                       doc="feature anisotropy: top half of F's singular values (others 1)"),
    "init": Parameter("random", "choice", static=True, choices=INITS,
                      doc="rank-r random, aligned rank-1 (Prop. 1), or aligned with the "
                          "rank-d/2 truncation of F"),
    "lr": Parameter(0.1, "float", static=False, minimum=0, exclusive_minimum=True,
                    doc="learning rate (time = step x lr)"),
    **step_parameters(2000, 100),
}

OUTPUTS = {
    "loss": Output("population loss ||F W1^T W2^T - w||^2 / 2"),
    "kernel_alignment": Output("population kernel alignment <K0, Kt>_F / (||K0|| ||Kt||), "
                               "K = F M F, M = W1^T W1 + ||W2||^2 I"),
    "weight_change": Output("||theta - theta_0||, both layers (Frobenius)"),
}


def _check(static: dict) -> None:
    if static["init"] == "partial" and static["h"] < static["d"]:
        raise ValueError(f"init='partial' needs h >= d (got h={static['h']}, d={static['d']}): "
                         f"W1 holds d orthonormal columns")


def _check_batched(static: dict, values: dict) -> None:
    largest = min(static["d"], static["h"])
    bad = [r for r in values["rank"] if r > largest]
    if bad:
        raise ValueError(f"rank={bad[0]} is out of range; W1 is {static['h']} x {static['d']}, "
                         f"so rank must be in [1, min(d, h)] = [1, {largest}]")


def feature_scales(kappa, d: int) -> jax.Array:
    """(d,) diagonal of F: kappa on the first d // 2 features, 1 on the others."""
    return jnp.where(jnp.arange(d) < d // 2, kappa, 1.0)


def task_direction(task_seed, d: int) -> jax.Array:
    """(d,) teacher w, uniform on the unit sphere, from `task_seed` alone."""
    key = jax.random.fold_in(jax.random.key(task_seed), TASK_STREAM)
    w = jax.random.normal(key, (d,), jnp.result_type(float))
    return w / jnp.linalg.norm(w)


def kernel_matrix(weights: dict, scales: jax.Array) -> jax.Array:
    """(d, d) F M F with M = W1^T W1 + ||W2||^2 I: the NTK is x^T (F M F) x'."""
    W1, W2 = weights["W1"], weights["W2"]
    M = W1.T @ W1 + jnp.sum(W2**2) * jnp.eye(W1.shape[1], dtype=W1.dtype)
    return scales[:, None] * M * scales[None, :]


def initial_weights(normals: dict, w: jax.Array, p: dict) -> dict:
    """W1 (h, d) and W2 (1, h) at Frobenius norm sigma for the chosen init."""
    sigma, d = p["sigma"], p["d"]
    scales = feature_scales(p["kappa"], d)
    W2 = sigma * normals["W2"][None, :] / jnp.linalg.norm(normals["W2"])
    if p["init"] == "aligned":
        W1, W2 = initialisation.aligned_rank_one(normals["u"], w / scales, sigma)
    elif p["init"] == "partial":
        q, _ = jnp.linalg.qr(normals["Q"])
        top = (jnp.arange(d) < d // 2).astype(q.dtype)
        W1 = sigma * q * top / jnp.sqrt(d // 2)
    else:
        basis = initialisation.singular_basis(initialisation.gaussian(normals["W1"], 1.0))
        W1 = initialisation.truncate(basis, p["rank"], sigma)
    return {"W1": W1, "W2": W2}


def init(key: jax.Array, p: dict) -> dict:
    """Weights (one normal draw from key(seed)), task w (from task_seed) and K(0)."""
    d, h = p["d"], p["h"]
    normals = normal_blocks(key, {"W1": (h, d), "W2": (h,), "u": (h,), "Q": (h, d)})
    w = task_direction(p["task_seed"], d)
    weights = initial_weights(normals, w, p)
    scales = feature_scales(p["kappa"], d)
    return {"weights": weights, "weights0": weights, "w": w,
            "kernel0": kernel_matrix(weights, scales)}


def population_loss(weights: dict, w: jax.Array, scales: jax.Array) -> jax.Array:
    """||F W1^T W2^T - w||^2 / 2 = E_x[(W2 W1 F x - w^T x)^2] / 2 for x ~ N(0, I)."""
    beta = scales * (weights["W1"].T @ weights["W2"][0])
    return 0.5 * jnp.sum((beta - w) ** 2)


def step(state: dict, p: dict) -> dict:
    """One gradient-descent step on the population loss."""
    scales = feature_scales(p["kappa"], p["d"])
    gradient = jax.grad(population_loss)(state["weights"], state["w"], scales)
    weights = jax.tree_util.tree_map(lambda x, g: x - p["lr"] * g, state["weights"], gradient)
    return {**state, "weights": weights}


def metrics(state: dict, p: dict) -> dict:
    """Population loss, kernel alignment with K(0), and the weight change."""
    scales = feature_scales(p["kappa"], p["d"])
    weights, weights0 = state["weights"], state["weights0"]
    change = sum(jnp.sum((weights[k] - weights0[k]) ** 2) for k in weights)
    return {
        "loss": population_loss(weights, state["w"], scales),
        "kernel_alignment": kernel_alignment(state["kernel0"], kernel_matrix(weights, scales)),
        "weight_change": jnp.sqrt(change),
    }


LINEAR_RANK = register(Experiment(
    name="linear_rank",
    doc="two-layer linear student-teacher, whitened inputs, small rank-r init, population-loss "
        "gradient descent (Liu et al. 2024, Theorem 1)",
    parameters=PARAMETERS,
    outputs=OUTPUTS,
    init=init,
    step=step,
    metrics=metrics,
    check=_check,
    check_batched=_check_batched,
    time_scale="lr",
    loss="loss",
))
