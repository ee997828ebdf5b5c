"""Initialisations: Gaussian, rank-r truncation at fixed norm, aligned rank-1, Dale's law (E/I).

Liu et al. (ICLR 2024), Sec. 2-3 and Prop. 1; paper page `connectivity.md` Sec. 1 and 4.

- `gaussian`: W0 = gain z / sqrt(fan_in), z standard normal (default gain 1.25, as the authors).
- `truncate`: W_r = U[:, :r] diag(s[:r]) V[:r]^T rescaled so ||W_r||_F = norm. The singular
  values keep their (Marchenko-Pastur) profile. `rank` may be a traced integer: the SVD
  (`singular_basis`) is computed once and the singular values are masked with i < r, so rank is a
  batched sweep axis (one compilation for every rank, all ranks of a seed share W0).
- `aligned_rank_one`: W1 = sigma u b^T, W2 = sigma u^T (Prop. 1: gradient flow keeps this form).
- `recurrent_matrix`: a user-supplied square matrix, optionally rank-truncated at fixed norm.
- `dale_matrix`: an excitatory/inhibitory matrix whose columns keep one sign; its mean (unless
  balanced) is a rank-1 term that gives an outlier eigenvalue.

Functions take standard-normal arrays rather than keys, so a run draws all its Gaussian numbers in
one `jax.random.normal` call (see `lazyrich.core.sampling`).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr


class SingularBasis(NamedTuple):
    """W = u diag(s) vt with u (m, k), s (k,) descending, vt (k, n), k = min(m, n)."""

    u: jax.Array
    s: jax.Array
    vt: jax.Array


def gaussian(normal: jax.Array, gain=1.25) -> jax.Array:
    """gain * normal / sqrt(fan_in): entries N(0, gain^2 / n) for normal of shape (..., m, n)."""
    return gain * normal / jnp.sqrt(normal.shape[-1])


def uniform_fan_in(normal: jax.Array) -> jax.Array:
    """Uniform(-1/sqrt(n), 1/sqrt(n)) entries (PyTorch's `nn.Linear` default) from standard
    normals of shape (..., m, n), through the normal CDF: 2 Phi(z) - 1 is uniform on (-1, 1)."""
    return (2.0 * ndtr(normal) - 1.0) / jnp.sqrt(normal.shape[-1])


def singular_basis(W: jax.Array) -> SingularBasis:
    """The thin SVD of W (m, n), computed once and shared by every rank of a sweep."""
    u, s, vt = jnp.linalg.svd(W, full_matrices=False)
    return SingularBasis(u, s, vt)


def _check_rank(rank, shape: tuple[int, ...]) -> None:
    """Validate a concrete rank; a traced rank (a batched sweep axis) is validated by the
    experiment before compilation."""
    allowed = f"an integer in [1, min(shape)] = [1, {min(shape)}]"
    integral = isinstance(rank, numbers.Integral) or (
        isinstance(rank, np.ndarray | jax.Array) and jnp.issubdtype(rank.dtype, jnp.integer))
    if isinstance(rank, bool | np.bool_) or not integral:
        raise TypeError(f"rank={rank!r} has type {type(rank).__name__}; rank must be {allowed}")
    try:
        value = int(rank)
    except (jax.errors.TracerIntegerConversionError, jax.errors.ConcretizationTypeError):
        return
    if not 1 <= value <= min(shape):
        raise ValueError(f"rank={value} is out of range for a matrix of shape {tuple(shape)}; "
                         f"rank must be {allowed}")


def truncate(basis: SingularBasis, rank, norm) -> jax.Array:
    """The rank-r truncation of u diag(s) vt, rescaled to Frobenius norm `norm`.

    Args:
        basis: from `singular_basis(W0)`.
        rank: integer r in [1, min(m, n)]; may be traced (a batched sweep axis).
        norm: target Frobenius norm (e.g. ||W0||_F, or sigma for the linear theory).

    Returns:
        (m, n) matrix of rank r (exactly, up to rounding) and Frobenius norm `norm`, whose top-r
        singular vectors are those of W0.
    """
    kept = jnp.where(jnp.arange(basis.s.shape[-1]) < rank, basis.s, 0.0)
    scale = norm / jnp.sqrt(jnp.sum(kept**2))
    return (basis.u * (kept * scale)) @ basis.vt


def rank_truncated(W: jax.Array, rank, norm=None) -> jax.Array:
    """`truncate(singular_basis(W), rank, norm)`, norm defaulting to ||W||_F (fixed norm).

    Raises:
        ValueError: W not a matrix, or a concrete rank outside [1, min(W.shape)].
    """
    W = jnp.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W has shape {W.shape}; rank truncation needs a matrix (m, n)")
    _check_rank(rank, W.shape)
    if norm is None:
        norm = jnp.sqrt(jnp.sum(W**2))
    return truncate(singular_basis(W), rank, norm)


def aligned_rank_one(u: jax.Array, b: jax.Array, sigma) -> tuple[jax.Array, jax.Array]:
    """The aligned rank-1 initialisation of Prop. 1: (W1, W2) = (sigma u b^T, sigma u^T).

    Args:
        u: (h,) hidden direction; b: (d,) input direction (the task direction); both are
            normalised here, so ||W1||_F = ||W2||_F = sigma.

    Returns:
        W1 (h, d), W2 (1, h).
    """
    u = u / jnp.linalg.norm(u)
    b = b / jnp.linalg.norm(b)
    return sigma * jnp.outer(u, b), sigma * u[None, :]


def recurrent_matrix(matrix, rank=None) -> jax.Array:
    """A user-supplied recurrent matrix (N, N), optionally truncated to rank r at fixed norm.

    Raises:
        ValueError: the matrix is not square 2-d, has non-finite entries, or rank is out of range.
    """
    matrix = jnp.asarray(matrix, jnp.result_type(float))
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix has shape {matrix.shape}; a recurrent matrix must be square "
                         f"(N, N)")
    if not bool(jnp.all(jnp.isfinite(matrix))):
        raise ValueError("matrix has non-finite entries; a recurrent matrix must be finite")
    return matrix if rank is None else rank_truncated(matrix, rank)


def dale_matrix(normal: jax.Array, gain=1.0, inhibitory_fraction=0.2,
                balanced: bool = False) -> jax.Array:
    """A Dale's-law matrix: column j (presynaptic unit j) is all >= 0 or all <= 0.

    W_ij = sign_j c_j gain |z_ij| / sqrt(N), with the last round(f N) columns inhibitory
    (sign -1). Unbalanced (c_j = 1) the mean connectivity is a rank-1 term with eigenvalue
    gain sqrt(N) sqrt(2/pi) (1 - 2 f), an outlier far outside the bulk; balanced
    (c_j = (1 - f) / f on inhibitory columns) every row has zero expected sum and the outlier
    disappears.

    Args:
        normal: (N, N) standard normals.
        inhibitory_fraction: f in (0, 1), the fraction of inhibitory units.

    Raises:
        ValueError: normal not square, or f outside (0, 1) or leaving no unit of one type.
    """
    n_rows, n = normal.shape[-2:]
    if n_rows != n:
        raise ValueError(f"normal has shape {normal.shape}; a Dale matrix is square (N, N)")
    n_inhibitory = int(round(inhibitory_fraction * n))
    if not 0 < inhibitory_fraction < 1 or not 0 < n_inhibitory < n:
        raise ValueError(f"inhibitory_fraction={inhibitory_fraction!r} is out of range for "
                         f"N={n}; it must be in (0, 1) and leave at least one unit of each type")
    inhibitory = jnp.arange(n) >= n - n_inhibitory
    weight = (n - n_inhibitory) / n_inhibitory if balanced else 1.0
    column_scale = jnp.where(inhibitory, -weight, 1.0)
    return gain * jnp.abs(normal) * column_scale / jnp.sqrt(n)
