"""Gaussian inputs with a polynomial single-index target, and exact population losses.

The grokking task of Kumar et al. (2023), Sec. 2: inputs x ~ N(0, I_D), a teacher direction
beta ~ N(0, I_D), the projection z = beta . x / sqrt(D) (variance s = |beta|^2 / D, about 1), and
the target y = p(z) for a polynomial p. The paper's default is p(z) = z^2, i.e.
y = (beta . x)^2 / D; `target="hermite"` gives the probabilists' Hermite polynomial He_k(z).

For a model that is itself quadratic in x,

    f(x) = v . x / sqrt(D) + x^T M x / D            (v: D-vector, M: symmetric D x D),

the population loss E_x (f - y)^2 is a closed form in a few scalars (Stein's lemma on the
Gaussian z):

    E f^2    = |v|^2 / D + (2 ||M||_F^2 + (tr M)^2) / D^2
    E f z^j  = (v . beta / D) j E z^(j-1) + (tr M E z^j + (beta^T M beta / D) j (j-1) E z^(j-2)) / D
    E z^n    = s^(n/2) (n-1)!!  for even n, 0 for odd n.

For p(z) = z^2 this is the formula of the paper page, Sec. 2:
(2 ||B||_F^2 + (tr B)^2) / D^2 + |v|^2 / D with B = M - beta beta^T.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from numpy.polynomial import hermite_e

TARGETS = ("monomial", "hermite")


def polynomial_coefficients(target: str, degree: int) -> tuple[float, ...]:
    """Coefficients c_0..c_k (power basis) of the target polynomial p(z) = sum_j c_j z^j."""
    if target == "monomial":
        return tuple([0.0] * degree + [1.0])
    if target == "hermite":
        return tuple(float(c) for c in hermite_e.herme2poly([0.0] * degree + [1.0]))
    raise ValueError(f"target={target!r} is unknown; target must be one of {TARGETS}")


def gaussian_moment(n: int, variance: jax.Array) -> jax.Array:
    """E z^n for z ~ N(0, variance); n is a static non-negative integer."""
    if n % 2:
        return jnp.zeros_like(variance)
    double_factorial = math.prod(range(n - 1, 0, -2)) if n > 1 else 1
    return double_factorial * variance ** (n // 2)


def evaluate_polynomial(coefficients: tuple[float, ...], z: jax.Array) -> jax.Array:
    """p(z) = sum_j c_j z^j elementwise (Horner)."""
    out = jnp.zeros_like(z)
    for c in reversed(coefficients):
        out = out * z + c
    return out


def single_index_target(x: jax.Array, beta: jax.Array,
                        coefficients: tuple[float, ...]) -> jax.Array:
    """y = p(beta . x / sqrt(D)) for inputs x (..., D) and teacher direction beta (D,)."""
    return evaluate_polynomial(coefficients, x @ beta / jnp.sqrt(beta.shape[0]))


def quadratic_model_population_loss(v: jax.Array, M: jax.Array, beta: jax.Array,
                                    coefficients: tuple[float, ...]) -> jax.Array:
    """Exact E_x (f(x) - p(z))^2 for f = v.x/sqrt(D) + x^T M x / D, x ~ N(0, I_D).

    Args:
        v: (D,) linear coefficients (already including any output scale).
        M: (D, D) symmetric quadratic coefficients (already including any output scale).
        beta: (D,) teacher direction; z = beta . x / sqrt(D).
        coefficients: power-basis coefficients of p (static).

    Returns:
        scalar population mean squared error.
    """
    dim = float(beta.shape[0])  # a Python int D**2 overflows int32 for D > 46340
    variance = beta @ beta / dim
    trace_m = jnp.trace(M)
    frob2_m = jnp.sum(M * M)
    beta_m_beta = beta @ M @ beta / dim
    v_beta = v @ beta / dim
    model_sq = v @ v / dim + (2.0 * frob2_m + trace_m**2) / dim**2
    cross = 0.0
    target_sq = 0.0
    for j, c_j in enumerate(coefficients):
        if c_j == 0.0:
            continue
        linear = v_beta * j * gaussian_moment(j - 1, variance) if j >= 1 else 0.0
        quadratic = trace_m * gaussian_moment(j, variance)
        if j >= 2:
            quadratic = quadratic + beta_m_beta * j * (j - 1) * gaussian_moment(j - 2, variance)
        cross = cross + c_j * (linear + quadratic / dim)
        for i, c_i in enumerate(coefficients):
            if c_i != 0.0:
                target_sq = target_sq + c_i * c_j * gaussian_moment(i + j, variance)
    return model_sq - 2.0 * cross + target_sq

