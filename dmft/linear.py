"""Closed forms for two-layer linear networks: kernel alignment after rich learning vs initial rank.

Liu et al. (ICLR 2024), Theorem 1 and Prop. 1; paper page `connectivity.md` Sec. 4. For
f(x) = W2 W1 x on whitened inputs the NTK is K(x, x') = x^T M x' with
M = W1^T W1 + ||W2||^2 I_d. Gradient flow on the squared loss of a task y = w^T x from an init of
vanishing norm ends balanced and rank-1, M(T) = ||w|| (w_hat w_hat^T + I_d), so the kernel
alignment KA = <M0, MT>_F / (||M0||_F ||MT||_F) is

    per task          KA(w) = (w_hat^T M0 w_hat + tr M0) / (sqrt(d + 3) ||M0||_F)
    averaged over w   E[KA] = (1 + 1/d) tr M0 / (sqrt(d + 3) ||M0||_F)   (w uniform on a sphere)

and E[KA] rises with the participation ratio of W1(0): higher effective rank, lazier learning.
The names match `lazyrich`'s `linear_rank` experiment (`kernel_alignment`, `rank`, `seed`,
`d`, `h`, `sigma`), so `lazyrich.plot.linear_theory(simulation, rank_curve(...))` overlays them.
Everything is numpy float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from dmft import checks
from lazyrich.core.checks import check_positive_integer, check_seed


def _check_matrix(M0) -> np.ndarray:
    M0 = checks.finite_array("M0", M0)
    if M0.ndim < 2 or M0.shape[-1] != M0.shape[-2]:
        raise ValueError(f"M0 has shape {M0.shape}; it must be square (..., d, d)")
    if not np.all(np.any(M0 != 0, axis=(-2, -1))):
        raise ValueError("M0 is zero; the kernel alignment needs a non-zero ||M0||_F")
    return M0


def initial_kernel_matrix(W1, W2) -> np.ndarray:
    """M0 = W1^T W1 + ||W2||^2 I for W1 (h, d) and W2 (1, h) (or (h,))."""
    W1, W2 = checks.finite_array("W1", W1), checks.finite_array("W2", W2)
    if W1.ndim != 2 or W2.size != W1.shape[0]:
        raise ValueError(f"W1 has shape {W1.shape} and W2 {W2.shape}; they must be (h, d) and "
                         f"(1, h)")
    return W1.T @ W1 + np.sum(W2**2) * np.eye(W1.shape[1])


def kernel_alignment(M0, w) -> np.ndarray:
    """Per-task KA(w) = (w_hat^T M0 w_hat + tr M0) / (sqrt(d+3) ||M0||_F).

    Args:
        M0: (d, d) initial kernel matrix (`initial_kernel_matrix`).
        w: (..., d) task vectors (only their directions matter).

    Returns:
        (...) kernel alignments between the initial kernel and the end kernel of the
        small-init limit.
    """
    M0 = _check_matrix(M0)
    w = checks.finite_array("w", w)
    d = M0.shape[-1]
    if w.ndim == 0:
        raise ValueError(f"w={w!r} is a scalar; it must be (..., d) task vectors with d = {d}")
    if w.shape[-1] != d:
        raise ValueError(f"w has shape {w.shape}; for M0 of shape {M0.shape} its last axis must "
                         f"be {d}")
    norm = np.linalg.norm(w, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("w has a zero task vector; only non-zero directions have an alignment")
    w_hat = w / norm
    quadratic = np.einsum("...i,ij,...j->...", w_hat, M0, w_hat)
    return (quadratic + np.trace(M0)) / (np.sqrt(d + 3) * np.linalg.norm(M0))


def expected_kernel_alignment(M0, d: int) -> np.ndarray:
    """E_w[KA] = (1 + 1/d) tr M0 / (sqrt(d+3) ||M0||_F) for w uniform on the sphere in R^d.

    Args:
        M0: (..., d, d) initial kernel matrices.
        d: the input dimension (must equal M0's size).
    """
    M0 = _check_matrix(M0)
    check_positive_integer("d", d)
    if M0.shape[-1] != d:
        raise ValueError(f"d={d} does not match M0 of shape {M0.shape}")
    trace = np.trace(M0, axis1=-2, axis2=-1)
    frobenius = np.sqrt(np.sum(M0**2, axis=(-2, -1)))
    return (1 + 1 / d) * trace / (np.sqrt(d + 3) * frobenius)


def _check_rank_curve(rank, seed, d, h, sigma) -> tuple[list[int], list[int]]:
    """(seeds, ranks) as int lists, after refusing what `rank_curve` cannot use."""
    for name, value in (("rank", rank), ("seed", seed)):
        if isinstance(value, str | bytes) or np.ndim(value) != 1 or np.size(value) == 0:
            raise TypeError(f"{name}={value!r}: must be a non-empty 1-d list of integers")
    check_positive_integer("d", d)
    check_positive_integer("h", h)
    checks.number("sigma", sigma)
    ranks = list(rank)
    for one in ranks:
        check_positive_integer("rank", one)
        if one > min(d, h):
            raise ValueError(f"rank={one} is out of range; rank must be in [1, min(d, h)] = "
                             f"[1, {min(d, h)}]")
    return [check_seed(s) for s in seed], [int(r) for r in ranks]


def rank_curve(rank: Sequence[int], seed: Sequence[int] = (0,), d: int = 20, h: int = 50,
               sigma: float = 1e-3) -> xr.Dataset:
    """E[KA] vs rank for the same initial weights as `lazyrich.sweep("linear_rank", ...)`.

    The initial weights are drawn by the experiment itself (init="random", kappa=1), so each
    (seed, rank) point is the theory for exactly the simulated network.

    Returns:
        Dataset with `kernel_alignment` (seed, rank) and the initial participation ratio of W1.
    """
    import jax

    import lazyrich
    from lazyrich.measures.rank_measures import effective_rank

    seed, rank = _check_rank_curve(rank, seed, d, h, sigma)
    experiment = lazyrich.get_experiment("linear_rank")
    alignment = np.empty((len(seed), len(rank)))
    participation = np.empty_like(alignment)
    for i, s in enumerate(seed):
        for j, r in enumerate(rank):
            params = experiment.defaults(d=d, h=h, sigma=sigma, rank=r, seed=s)
            weights = experiment.init(jax.random.key(s), params)["weights"]
            M0 = initial_kernel_matrix(weights["W1"], weights["W2"])
            alignment[i, j] = expected_kernel_alignment(M0, d)
            participation[i, j] = float(effective_rank(weights["W1"], "participation"))
    return xr.Dataset(
        {"kernel_alignment": (("seed", "rank"), alignment,
                              {"description": "E_w[KA], closed form of Theorem 1"}),
         "participation_ratio": (("seed", "rank"), participation,
                                 {"description": "participation ratio of W1(0)"})},
        coords={"seed": list(seed), "rank": list(rank)},
        attrs={"theory": "Theorem 1 (small-init limit)", "d": d, "h": h, "sigma": sigma})
