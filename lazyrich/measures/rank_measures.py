"""Effective-rank measures of a matrix, batched over leading axes.

Liu et al., "How connectivity structure shapes rich and lazy learning in neural circuits"
(ICLR 2024), Sec. 3 and App. B; paper page `connectivity.md` Sec. 2. With s_1 >= s_2 >= ... the
singular values and l_i the eigenvalues (|l_1| the largest modulus):

    hard           #{s_i > tol s_1}
    entropy        exp(-sum_i p_i log p_i),  p_i = s_i / sum_j s_j      (Roy & Vetterli 2007)
    participation  (sum_i s_i^2)^2 / sum_i s_i^4
    stable         ||W||_F^2 / ||W||_2^2 = sum_i s_i^2 / s_1^2
    nuclear        sum_i s_i / s_1                                      (nuclear / operator norm)
    eigenvalue     sum_i |l_i| / (|l_1| N)  in (0, 1]                   (square W only)

Every measure is invariant to W -> c W (c != 0). The identity gives N (eigenvalue ratio 1); any
rank-1 matrix gives 1 (eigenvalue ratio 1/N). The all-zero matrix has no effective rank (NaN).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

KINDS = ("hard", "entropy", "participation", "stable", "nuclear", "eigenvalue")


def _check(W: jax.Array, kind: str, tol) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not an effective-rank measure; kind must be one of "
                         f"{KINDS}")
    if W.ndim < 2:
        raise ValueError(f"W has shape {W.shape}; effective_rank needs a matrix (..., m, n)")
    if kind == "eigenvalue" and W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W has shape {W.shape}; kind='eigenvalue' needs square matrices "
                         f"(..., N, N)")
    if tol is not None and kind != "hard":
        raise ValueError(f"tol={tol!r} applies to kind='hard' only (got kind={kind!r})")
    if tol is not None and not 0 < float(tol) < 1:
        raise ValueError(f"tol={tol!r} is out of range; tol must be in (0, 1)")


def _check_values(W) -> None:
    """Refuse complex, non-numeric and non-finite W (values only when W is concrete)."""
    dtype = getattr(W, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"W is complex ({dtype}); effective_rank needs real matrices")
    try:
        values = np.asarray(W)
    except jax.errors.TracerArrayConversionError:
        return
    if np.iscomplexobj(values):
        raise TypeError(f"W is complex ({values.dtype}); effective_rank needs real matrices")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise TypeError(f"W has dtype {values.dtype}; effective_rank needs real numeric "
                        f"matrices")
    finite = np.isfinite(values)
    if not finite.all():
        raise ValueError(f"W has {int(finite.size - finite.sum())} NaN or infinite entries; "
                         f"effective_rank needs finite matrices")


def _eigenvalue_ratio(W: jax.Array) -> jax.Array:
    moduli = jnp.abs(jnp.linalg.eigvals(W))
    return jnp.sum(moduli, axis=-1) / (jnp.max(moduli, axis=-1) * W.shape[-1])


def effective_rank(W, kind: str = "entropy", tol: float | None = None) -> jax.Array:
    """The effective rank of W under one of six measures (see the module docstring).

    Args:
        W: (..., m, n) real matrices; leading axes are batch axes.
        kind: "hard", "entropy", "participation", "stable", "nuclear" or "eigenvalue".
        tol: relative threshold of kind="hard" (default max(m, n) x the dtype's epsilon, as
            `numpy.linalg.matrix_rank`).

    Returns:
        (...) effective ranks: integers for "hard", floats otherwise. "eigenvalue" uses
        `jnp.linalg.eigvals`, which JAX implements on CPU only.

    Raises:
        TypeError: complex or non-numeric W.
        ValueError: unknown kind, W not a matrix, a non-square W for "eigenvalue", a bad tol,
            or NaN / inf entries (checked on concrete arrays; traced ones inside `jit` are
            checked for dtype only).
    """
    _check_values(W)
    W = jnp.asarray(W)
    if not jnp.issubdtype(W.dtype, jnp.floating):
        W = W.astype(jnp.result_type(float))
    _check(W, kind, tol)
    if kind == "eigenvalue":
        return _eigenvalue_ratio(W)
    s = jnp.linalg.svd(W, compute_uv=False)
    top = s[..., 0]
    if kind == "hard":
        threshold = max(W.shape[-2:]) * jnp.finfo(W.dtype).eps if tol is None else tol
        return jnp.sum(s > threshold * top[..., None], axis=-1)
    if kind == "entropy":
        p = s / jnp.sum(s, axis=-1, keepdims=True)
        return jnp.exp(-jnp.sum(xlogy(p, p), axis=-1))
    if kind == "participation":
        squares = s**2
        return jnp.sum(squares, axis=-1) ** 2 / jnp.sum(squares**2, axis=-1)
    if kind == "stable":
        return jnp.sum(s**2, axis=-1) / top**2
    return jnp.sum(s, axis=-1) / top
