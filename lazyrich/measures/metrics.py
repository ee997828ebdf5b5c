"""Metrics shared by experiments: losses, parameter movement, kernel regression.

All functions are pure, jit- and vmap-friendly, and work in float32 or float64 (whatever the
inputs carry). The rich/lazy measures of Liu et al. (2024) live in their own modules and are
re-exported here: `effective_rank` (`lazyrich.measures.rank_measures`), `empirical_ntk`
(`lazyrich.measures.ntk`), and weight change, kernel / representation / kernel-target
alignment and sign similarity (`lazyrich.measures.alignment`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lazyrich.measures.alignment import centre_kernel as centre_kernel
from lazyrich.measures.alignment import kernel_alignment as kernel_alignment
from lazyrich.measures.alignment import kernel_target_alignment as kernel_target_alignment
from lazyrich.measures.alignment import relative_weight_change as relative_weight_change
from lazyrich.measures.alignment import representation_alignment as representation_alignment
from lazyrich.measures.alignment import sign_similarity as sign_similarity
from lazyrich.measures.alignment import weight_change as weight_change
from lazyrich.measures.grokking_times import grokking_times as grokking_times
from lazyrich.measures.grokking_times import half_time as half_time
from lazyrich.measures.ntk import empirical_ntk as empirical_ntk
from lazyrich.measures.rank_measures import effective_rank as effective_rank


def mean_squared_error(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """mean((prediction - target)^2) over all elements; shapes must match."""
    return jnp.mean((prediction - target) ** 2)


def squared_norm(tree) -> jax.Array:
    """Sum of squares of every leaf of a pytree."""
    return sum(jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(tree))


def relative_parameter_movement(params, params0) -> jax.Array:
    """|theta - theta_0|^2 / |theta_0|^2 over all leaves of two pytrees of equal structure.

    Kumar et al. (2023), Fig. 3: it falls as the output scale alpha grows (lazier training).
    """
    change = jax.tree_util.tree_map(jnp.subtract, params, params0)
    return squared_norm(change) / squared_norm(params0)


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """numerator / denominator, and 0 where the denominator is 0 (e.g. alignment at init)."""
    nonzero = denominator != 0
    return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), 0.0)


def _kernel_regression_float64(kernel_train, kernel_test_train, y_train, ridge):
    """numpy float64 body of `kernel_regression` (runs on the host)."""
    kernel_train = np.asarray(kernel_train, np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(kernel_train)
    eigenvalues = eigenvalues + float(ridge)
    cutoff = len(eigenvalues) * np.finfo(np.float64).eps * np.max(np.abs(eigenvalues))
    keep = eigenvalues > cutoff
    inverse = np.zeros_like(eigenvalues)
    inverse[keep] = 1.0 / eigenvalues[keep]
    coefficients = eigenvectors @ (inverse * (eigenvectors.T @ np.asarray(y_train, np.float64)))
    prediction = np.asarray(kernel_test_train, np.float64) @ coefficients
    return prediction.astype(np.asarray(kernel_test_train).dtype)


def kernel_regression(kernel_train: jax.Array, kernel_test_train: jax.Array,
                      y_train: jax.Array, ridge: float = 0.0) -> jax.Array:
    """Predictions of (ridge) kernel regression, the t -> infinity limit of gradient flow.

    f(x) = K(x, X) (K(X, X) + ridge I)^+ y, with the pseudo-inverse taken over eigenvalues above
    `P * float64 epsilon * largest eigenvalue`, so ridgeless regression stays finite when the
    kernel is singular. The eigendecomposition always runs in float64 on the host (through
    `jax.pure_callback`): the initial NTK of the grokking model has condition numbers ~1e5,
    which a float32 solve cannot resolve (measured 20% errors in the test loss), while a
    float32 *kernel* solved in float64 agrees with a float64 one to 1e-3.

    Args:
        kernel_train: (P, P) symmetric positive semi-definite kernel on the training inputs.
        kernel_test_train: (Q, P) kernel between test and training inputs.
        y_train: (P,) training targets (minus the model's initial output, if it has one).
        ridge: non-negative ridge added to the diagonal.

    Returns:
        (Q,) predictions at the test inputs, in the dtype of `kernel_test_train`.
    """
    result = jax.ShapeDtypeStruct(kernel_test_train.shape[:1], kernel_test_train.dtype)
    return jax.pure_callback(_kernel_regression_float64, result, kernel_train,
                             kernel_test_train, y_train, jnp.asarray(ridge),
                             vmap_method="sequential")


def all_finite(values: dict[str, jax.Array]) -> jax.Array:
    """True when every value in the dict is finite (used to detect diverged runs)."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in values.values()]))
