"""Soft committee machines: outputs, and Gaussian pair expectations of their activations.

A committee machine of K units with weights J (K, D) and unit readouts computes
sum_k g(J_k . x / sqrt(D)) on inputs x ~ N(0, I_D). The pre-activations of several such machines
on the same input are jointly Gaussian with covariance given by the weight overlaps
(Q = J J^T / D, R = J B^T / D, T = B B^T / D), so population errors are closed forms in the
overlaps (Saad & Solla 1995, Phys. Rev. E 52, 4225; Cho & Saul 2009 for ReLU):

    erf:  E[g(u) g(v)] = (2/pi) arcsin(C_uv / sqrt((1 + C_uu)(1 + C_vv))),  g(z) = erf(z / sqrt 2)
    relu: E[g(u) g(v)] = sqrt(C_uu C_vv) (sin th + (pi - th) cos th) / (2 pi),
          cos th = C_uv / sqrt(C_uu C_vv)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

ACTIVATIONS = ("erf", "relu")


def activation(name: str):
    """g for a committee unit: erf(z / sqrt 2) or max(z, 0)."""
    if name == "erf":
        return lambda z: erf(z / jnp.sqrt(2.0))
    if name == "relu":
        return jax.nn.relu
    raise ValueError(f"activation={name!r} is unknown; activation must be one of {ACTIVATIONS}")


def committee_output(weights: jax.Array, x: jax.Array, name: str) -> jax.Array:
    """sum_k g(weights_k . x / sqrt(D)) for inputs x (..., D) and weights (K, D) -> (...)."""
    return jnp.sum(activation(name)(x @ weights.T / jnp.sqrt(weights.shape[1])), axis=-1)


def pair_expectation(covariance: jax.Array, name: str) -> jax.Array:
    """E[g(u_a) g(u_b)] for every pair of jointly Gaussian fields with the given covariance.

    Args:
        covariance: (n, n) covariance of the fields. Returns: (n, n).
    """
    diagonal = jnp.diag(covariance)
    if name == "erf":
        scale = jnp.sqrt(jnp.outer(1.0 + diagonal, 1.0 + diagonal))
        return (2.0 / jnp.pi) * jnp.arcsin(jnp.clip(covariance / scale, -1.0, 1.0))
    if name == "relu":
        norms = jnp.sqrt(jnp.outer(diagonal, diagonal))
        cosine = jnp.clip(covariance / jnp.where(norms > 0, norms, 1.0), -1.0, 1.0)
        angle = jnp.arccos(cosine)
        return norms * (jnp.sin(angle) + (jnp.pi - angle) * cosine) / (2.0 * jnp.pi)
    raise ValueError(f"activation={name!r} is unknown; activation must be one of {ACTIVATIONS}")


def generalisation_error(covariance: jax.Array, weights: jax.Array, name: str) -> jax.Array:
    """(1/2) E[(sum_a w_a g(u_a))^2]: the population error of a signed sum of units.

    With fields (student units, teacher units) and weights (alpha, ..., -1, ...) this is
    (1/2) E[(alpha sum_i g(x_i) - sum_n g(y_n))^2].
    """
    return 0.5 * weights @ pair_expectation(covariance, name) @ weights
