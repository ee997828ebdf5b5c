"""Per-path responses of the grokking DMFT and the choice of the paths that estimate them.

The response part of `dmft/grokking.py` (equations G5-G8 linearised, `dmft/README.md`): each
path's exact response to its fields with the global trajectories held fixed (`path_response`),
the equal-time blocks from every path's local Jacobian (`local_jacobian`), and which M_R paths
estimate the memory part of the averaged response (`response_paths`). Shapes as in
`dmft/grokking_paths.py`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dmft import grokking_paths as paths_
from dmft import triangular
from dmft.grokking_checks import RESPONSE_SAMPLING
from lazyrich.core.checks import check_positive_integer


def _local(a, m, z, nu, p):
    """Phi (2,) and Delta of one path at one time, for the local derivatives."""
    # through the module, so a monkeypatched `forces` (benchmarks/dmft_diagnosis.py) acts here too
    delta, _, phi = paths_.forces(a, z, nu, m, p)
    return phi, delta


def local_jacobian(a, m, z, nu, p):
    """dPhi_k / da_k (M, n, 2, 2) of every path at every time, m held fixed: the equal-time
    block of each path's response."""
    def one(a_k, m_k, z_1, nu_k):
        return jax.jacfwd(lambda x: _local(x, m_k, z_1, nu_k, p)[0])(a_k)

    over_time = jax.vmap(one, (0, 0, None, 0))
    return jax.vmap(over_time, (0, 0, 0, None))(a, m, z, nu)


# below this size `divide_lower` divides by the whole block instead of splitting further
DIVIDE_LEAF = 128


def divide_lower(rhs, lower, unit_diagonal=False, leaf=None):
    """rhs lower^{-1} for lower-triangular `lower` (m, m) and `rhs` (m, m) lower triangular
    up to 2 x 2 diagonal blocks (the result is too).

    One triangular solve against a full right-hand side costs m^3 multiply-adds; splitting at
    an even index, [[R11, 0], [R21, R22]] with R11 = F11 L11^-1, R22 = F22 L22^-1 (recursively)
    and R21 = (F21 - R22 L21) L11^-1, costs m^3 / 3: the zero upper blocks are never touched.
    `leaf`: the size solved directly (default DIVIDE_LEAF)."""
    m = rhs.shape[0]
    leaf = DIVIDE_LEAF if leaf is None else leaf
    if m <= leaf or m < 4:
        return triangular.right_divide(rhs, lower, unit_diagonal)
    half = m // 4 * 2
    top = divide_lower(rhs[:half, :half], lower[:half, :half], unit_diagonal, leaf)
    bottom = divide_lower(rhs[half:, half:], lower[half:, half:], unit_diagonal, leaf)
    corner = triangular.right_divide(rhs[half:, :half] - bottom @ lower[half:, :half],
                                     lower[:half, :half], unit_diagonal)
    return jnp.block([[top, jnp.zeros((half, m - half), rhs.dtype)], [corner, bottom]])


def path_response(a, m, delta, rows, z, nu, kernel, bulk, p):
    """Exact response of one path with the global trajectories (nu, C_g, A2) held fixed.

    The bulk field of the path is g = L chi_g, L = (1 + c_g H_g diag(Delta))^{-1}, so its
    variance q_k = (L C_g L^T)_kk responds to earlier residuals as
    dq_k / dDelta_l = -2 c_g (L H_g)_kl (L C_g L^T)_lk. With dm = -B dDelta (B strictly lower,
    the bulk's memory), dDelta = d da + dm and da = dchi - c H dPhi:
    dPhi = Jt da with Jt = J - e B (1 + B)^{-1} d, so R = Jt (1 + c H Jt)^{-1}.

    Args:
        a: (n, 2) fields; m, delta: (n,); rows: Y (n, r); z: scalar; nu: (n,);
        kernel: H (n, n, 2, 2); bulk: H_g (n, n).
    Returns:
        R (n, n, 2, 2) of the fields (h, omega), and the path's bulk response
        (eps / alpha) diag(Delta) L (n, n).
    """
    n = a.shape[0]
    alpha, eps, dim = p["alpha"], p["eps"], p["dim"]
    c_bulk = 2 * paths_.steps(p, n) / p["lam"] * eps / alpha
    weighted_kernel = kernel * paths_.field_weights(p, n)[None, :, None, None]      # H_kj c_j
    eye = jnp.eye(n)
    propagator = divide_lower(eye, eye + bulk * (c_bulk * delta)[None, :])
    memory = (alpha * eps * (dim - 1) / dim) * (propagator @ (bulk * c_bulk[None, :])) * (
        rows @ rows.T)
    absorbed = eye - divide_lower(eye, eye + memory)
    local = jax.vmap(jax.jacfwd(_local, argnums=(0, 1)), (0, 0, None, 0, None))
    (jac_phi_a, jac_phi_m), (jac_delta_a, _) = local(a, m, z, nu, p)
    full = (jnp.einsum("kab,kl->kalb", jac_phi_a, eye)
            - jnp.einsum("ka,kl,lb->kalb", jac_phi_m, absorbed, jac_delta_a))
    full = full.reshape(2 * n, 2 * n)
    # c H Jt through Jt's structure, block-diagonal minus e A d (rank 1 per time pair):
    # 4 n^3 flops instead of the 16 n^3 of the dense (2n x 2n) product
    through_memory = jnp.einsum("kjac,jc,jl->kal", weighted_kernel, jac_phi_m, absorbed)
    product = (jnp.einsum("klac,lcb->kalb", weighted_kernel, jac_phi_a)
               - jnp.einsum("kal,lb->kalb", through_memory, jac_delta_a))
    closed = jnp.eye(2 * n) + product.reshape(2 * n, 2 * n)
    if not p.get("implicit", False):
        # H is strictly lower: `closed` is unit lower triangular
        response = divide_lower(full, closed)
    else:
        # equal-time blocks I + c_k H_kk J_kk: closed = B U with B block-diagonal and U unit
        # lower triangular, so R = Jt closed^-1 = (Jt U^-1) B^-1
        blocks = closed.reshape(n, 2, n, 2)[jnp.arange(n), :, jnp.arange(n), :]     # (n, 2, 2)
        inverse = paths_.inverse_2x2(blocks)
        unit = jnp.einsum("kab,kblc->kalc", inverse, closed.reshape(n, 2, n, 2))
        unit = unit.reshape(2 * n, 2 * n)
        response = divide_lower(full, unit, unit_diagonal=True)
        response = jnp.einsum("kalb,lbc->kalc", response.reshape(n, 2, n, 2), inverse)
        response = response.reshape(2 * n, 2 * n)
    return (jnp.transpose(response.reshape(n, 2, n, 2), (0, 2, 1, 3)),
            eps / alpha * delta[:, None] * propagator)


def response_paths(z: np.ndarray, n_response: int, sampling: str = "first"):
    """(index (M_R,), weight (M_R,)) of the paths whose exact responses estimate the memory part
    of R and R_g, an average over all M paths.

    "first": the first M_R paths (z is a random permutation), equal weights 1 / M_R.
    "stratified": the memory is a heavy-tailed average (a path's bulk memory grows with its
    residual, ~ b z^2), so the M_R // 4 paths of largest |z| enter exactly (weight 1 / M each)
    and the other M_R - M_R // 4 stand for equal strata of the remaining paths ordered by |z|
    (one path from the middle of each stratum, weighted by the stratum's share). Both estimate
    the same average; with M_R = M both are the exact average.
    """
    if sampling not in RESPONSE_SAMPLING:
        raise ValueError(f"sampling must be one of {RESPONSE_SAMPLING}; got {sampling!r}")
    z = np.asarray(z)
    if z.ndim != 1 or z.size == 0 or not np.all(np.isfinite(z)):
        raise ValueError(f"z must be a non-empty 1-d array of finite numbers; got shape "
                         f"{z.shape}")
    count = z.shape[0]
    check_positive_integer("n_response", n_response)
    if n_response > count:
        raise ValueError(f"n_response={n_response} must not exceed the {count} paths")
    if sampling == "first":
        return np.arange(n_response), np.full(n_response, 1.0 / n_response)
    order = np.argsort(np.abs(z), kind="stable")[::-1]                 # largest |z| first
    tail = n_response // 4
    rest = order[tail:]
    strata = n_response - tail
    edges = np.linspace(0, rest.size, strata + 1)
    middles = rest[((edges[:-1] + edges[1:]) / 2).astype(int)]
    weights = np.concatenate([np.full(tail, 1.0 / count), np.diff(edges) / count])
    return np.concatenate([order[:tail], middles]), weights
