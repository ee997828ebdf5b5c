"""Measures of rich versus lazy learning: weight change, kernel and representation alignment.

Liu et al. (ICLR 2024), Sec. 2 ("measuring laziness"); paper page `connectivity.md` Sec. 3.
Larger weight change and lower alignment mean richer learning.

    weight change            ||W(T) - W(0)||_F          (relative: / ||W(0)||_F), per group
    kernel alignment         KA(K0, KT) = <K0, KT>_F / (||K0||_F ||KT||_F)
                             (centred: the same for H K H, H = I - 1 1^T / P; Cortes et al. 2012)
    representation alignment KA(H0 H0^T, HT HT^T) for hidden activity H (trials, units)
    kernel-target alignment  y^T K y / (||y||^2 ||K||_F)                 (Cristianini et al. 2001)
    sign similarity          fraction of units whose sign (ReLU on/off state) is unchanged

All functions are pure and batched over leading axes of their array arguments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check_square(name: str, kernel: jax.Array) -> None:
    if kernel.ndim < 2 or kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"{name} has shape {kernel.shape}; a kernel must be square "
                         f"(..., P, P)")


def centre_kernel(kernel: jax.Array) -> jax.Array:
    """H K H with H = I - 1 1^T / P: remove row, column and overall means. (..., P, P)."""
    row = jnp.mean(kernel, axis=-1, keepdims=True)
    column = jnp.mean(kernel, axis=-2, keepdims=True)
    overall = jnp.mean(kernel, axis=(-2, -1), keepdims=True)
    return kernel - row - column + overall


def kernel_alignment(kernel_a: jax.Array, kernel_b: jax.Array,
                     centered: bool = False) -> jax.Array:
    """<A, B>_F / (||A||_F ||B||_F) of two (..., P, P) kernels; 1 when B = c A (c > 0).

    Args:
        kernel_a, kernel_b: kernels of the same shape (batched over leading axes).
        centered: centre both kernels first (centered kernel alignment).

    Returns:
        (...) alignments, in [0, 1] for positive semi-definite kernels.
    """
    _check_square("kernel_a", kernel_a)
    _check_square("kernel_b", kernel_b)
    if kernel_a.shape != kernel_b.shape:
        raise ValueError(f"kernel_a has shape {kernel_a.shape} and kernel_b {kernel_b.shape}; "
                         f"the two kernels must have the same shape")
    if centered:
        kernel_a, kernel_b = centre_kernel(kernel_a), centre_kernel(kernel_b)
    inner = jnp.sum(kernel_a * kernel_b, axis=(-2, -1))
    norms = jnp.sqrt(jnp.sum(kernel_a**2, axis=(-2, -1)) * jnp.sum(kernel_b**2, axis=(-2, -1)))
    return inner / norms


def representation_alignment(activity_a: jax.Array, activity_b: jax.Array,
                             centered: bool = False) -> jax.Array:
    """Kernel alignment of the Gram matrices H H^T of two (..., trials, units) activities."""
    if activity_a.shape[:-1] != activity_b.shape[:-1]:
        raise ValueError(f"activity_a has shape {activity_a.shape} and activity_b "
                         f"{activity_b.shape}; they must hold the same trials (..., trials, "
                         f"units)")
    gram_a = activity_a @ jnp.swapaxes(activity_a, -1, -2)
    gram_b = activity_b @ jnp.swapaxes(activity_b, -1, -2)
    return kernel_alignment(gram_a, gram_b, centered)


def kernel_target_alignment(kernel: jax.Array, target: jax.Array) -> jax.Array:
    """y^T K y / (||y||^2 ||K||_F) for a (..., P, P) kernel and (..., P) targets."""
    _check_square("kernel", kernel)
    if target.shape != kernel.shape[:-1]:
        raise ValueError(f"target has shape {target.shape}; for a kernel of shape "
                         f"{kernel.shape} it must be {kernel.shape[:-1]}")
    quadratic = jnp.einsum("...a,...ab,...b->...", target, kernel, target)
    return quadratic / (jnp.sum(target**2, axis=-1) * jnp.sqrt(jnp.sum(kernel**2, axis=(-2, -1))))


def sign_similarity(activity_a: jax.Array, activity_b: jax.Array) -> jax.Array:
    """Fraction of entries with equal sign (for ReLU units: the same on/off state)."""
    if activity_a.shape != activity_b.shape:
        raise ValueError(f"activity_a has shape {activity_a.shape} and activity_b "
                         f"{activity_b.shape}; they must have the same shape")
    return jnp.mean(jnp.sign(activity_a) == jnp.sign(activity_b))


def weight_change(params: dict, params0: dict) -> dict[str, jax.Array]:
    """Parameter group name -> ||W - W0||_F, for two dicts of arrays with the same keys."""
    if set(params) != set(params0):
        raise ValueError(f"params has groups {sorted(params)} and params0 {sorted(params0)}; "
                         f"they must be the same")
    return {k: jnp.sqrt(jnp.sum((params[k] - params0[k]) ** 2)) for k in params}


def relative_weight_change(params: dict, params0: dict) -> dict[str, jax.Array]:
    """Parameter group name -> ||W - W0||_F / ||W0||_F."""
    change = weight_change(params, params0)
    return {k: v / jnp.sqrt(jnp.sum(params0[k] ** 2)) for k, v in change.items()}
