"""Sample paths, weight kernels and bulk factors of the grokking DMFT (the per-path responses
are in `dmft/grokking_response.py`).

The numerical core of `dmft/grokking.py` (equations G3-G10 of `dmft/README.md`). Every function
is pure and works on one parameter point; `dmft/grokking.py` vmaps over (alpha, eps, b).

Shapes: n time points, M sample paths, r the rank kept of the bulk field covariance C_g;
fields a = (h, omega) have a trailing axis of 2. `p` is a dict: scalars alpha, eps, lam (P / D),
dim (D), scale (b in y = b z^2); ds, the time steps in s = t / D (a scalar for a uniform grid or
(n,) with ds[k] = s_{k+1} - s_k, the last entry unused); and optionally implicit (a Python bool,
default False).

Time schemes. The spike overlap nu, the bulk columns and A2 are stepped explicitly (forward
Euler, step ds[k] from s_k to s_{k+1}). The fields a = (h, omega) are stepped explicitly too
(the force Phi_k acts over [s_k, s_{k+1}], H strictly lower) unless `implicit`: then backward
Euler (Phi_k acts over [s_{k-1}, s_k], H has its equal-time block and each path solves
a_k = rhs_k - c_k H_kk Phi(a_k) by Newton's method), which is stable at any step: the linear
fit's fast modes, rate up to 2 (1 + lam^-1/2)^2, no longer bound ds, only the slow feature
dynamics' accuracy does (`dmft/README.md`, "Implicit steps and a non-uniform grid").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dmft import triangular

NEWTON_STEPS = 6   # per implicit field step; the map is a contraction near the previous step


def inverse_2x2(matrix):
    """Inverse of every (2, 2) block of `matrix` (..., 2, 2) in closed form (adjugate over
    determinant): a batched LAPACK call per tiny block costs several times more on CPU."""
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    adjugate = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-c, a], -1)], -2)
    return adjugate / (a * d - b * c)[..., None, None]


def steps(p, n):
    """(n,) forward steps ds[k] = s_{k+1} - s_k of the explicit parts (nu, A2, the bulk)."""
    return jnp.broadcast_to(jnp.asarray(p["ds"]), (n,))


def field_weights(p, n):
    """(n,) c_j = 2 w_j / lam: the weight of the force Phi_j in the fields,
    a_k = chi_k - sum_j c_j H_kj Phi_j; w_j = ds[j] (explicit) or s_j - s_{j-1} (implicit,
    w_0 = 0)."""
    forward = steps(p, n)
    if p.get("implicit", False):
        forward = jnp.concatenate([jnp.zeros(1, forward.dtype), forward[:-1]])
    return 2 * forward / p["lam"]


def forces(a, z, nu, m, p):
    """(Delta, g, Phi) of eqs. (G3), (G5) for fields a = (h, omega) (..., 2).

    m is the bulk term of f (G4): (alpha eps / 2)[(D - 1)/D (q - 1) + z^2 A2 / D]."""
    alpha, eps, dim = p["alpha"], p["eps"], p["dim"]
    h, omega = a[..., 0], a[..., 1]
    g = nu * z + omega
    f = h + eps / (2 * alpha) * h**2 + alpha * eps / 2 * (g**2 - z**2 / dim) + m
    delta = f - p["scale"] * z**2
    phi_u = delta * (1 + eps / alpha * h)
    phi_w = eps / alpha * delta * g
    return delta, g, jnp.stack([phi_u, phi_w], axis=-1)


def bulk_term(q, z, a2, p):
    """m of eq. (G4): the bulk columns' share of f on a path with bulk variance q (...)."""
    half = p["alpha"] * p["eps"] / 2
    return half * ((p["dim"] - 1) / p["dim"] * (q - 1) + z**2 * a2 / p["dim"])


def _block_matrix(blocks):
    """(n, n, s, s) blocks as the (n s, n s) matrix with rows (k, a) and columns (l, b)."""
    n, _, s, _ = blocks.shape
    return jnp.transpose(blocks, (0, 2, 1, 3)).reshape(n * s, n * s)


def _blocks_of(matrix, s):
    """The inverse of `_block_matrix`: (n s, n s) -> (n, n, s, s)."""
    n = matrix.shape[0] // s
    return jnp.transpose(matrix.reshape(n, s, n, s), (0, 2, 1, 3))


def weight_kernel(response, c, lam, implicit=False):
    """H of eq. (G9) from the averaged response R (n, n, 2, 2); H (n, n, 2, 2).

    c: scalar or (n,) `field_weights`. Explicit: H_{k+1,.} = H_{k,.} + I e_k
    - c_k lam sum_{l<=k} R_kl H_{l,.}, H_kj = 0 for j >= k. Implicit (backward Euler):
    (I + c_k lam R_kk) H_{k,.} = H_{k-1,.} + I e_k - c_k lam sum_{l<k} R_kl H_{l,.}, so H has
    its equal-time blocks H_kk.

    Both recursions are one block lower-triangular system for all rows at once, solved as a
    (2n x 2n) triangular solve with 2n right-hand sides (`triangular.solve_lower`: matrix
    products, not n dependent steps)."""
    n = response.shape[0]
    c = jnp.broadcast_to(jnp.asarray(c, response.dtype), (n,))
    eye = jnp.eye(2, dtype=response.dtype)
    strictly_lower = jnp.tril(jnp.ones((n, n), response.dtype), -1)[:, :, None, None]
    blocks_eye = jnp.eye(n, dtype=response.dtype)[:, :, None, None] * eye
    previous_row = jnp.eye(n, k=-1, dtype=response.dtype)[:, :, None, None] * eye
    coupling = c[:, None, None, None] * lam
    if not implicit:
        # unknowns H_1..H_n: H_{k+1} - H_k + c_k lam sum_{l=1..k} R_kl H_l = I e_k (H_0 = 0)
        shifted = jnp.concatenate([response[:, 1:], jnp.zeros_like(response[:, :1])], axis=1)
        system = coupling * shifted * strictly_lower - previous_row + blocks_eye
        later = triangular.solve_lower(_block_matrix(system),
                                       jnp.eye(2 * n, dtype=response.dtype), unit_diagonal=True)
        return jnp.concatenate([jnp.zeros_like(response[:1]), _blocks_of(later, 2)[:-1]])
    # unknowns H_0..H_{n-1}, each row divided by its equal-time block I + c_k lam R_kk
    inverse = inverse_2x2(eye + coupling[:, 0] * response[jnp.arange(n), jnp.arange(n)])
    system = jnp.einsum("kab,klbc->klac", inverse,
                        coupling * response * strictly_lower - previous_row) + blocks_eye
    kernel = triangular.solve_lower(
        _block_matrix(system), _block_matrix(jnp.eye(n, dtype=response.dtype)[:, :, None, None]
                                             * inverse[:, None]), unit_diagonal=True)
    return _blocks_of(kernel, 2)


def bulk_kernel(response, c, lam):
    """(H_g (n, n) strictly lower, A (n,)) of eq. (G9b) from the bulk response R_g (n, n).

    theta_{k+1} = theta_k - c_k [eta_k + lam sum_{l<=k} R_g[k, l] theta_l] (c scalar or (n,),
    2 ds[k] / lam): H_g is the response to the force eta (theta_k = -sum_j c_j H_g[k, j] eta_j
    + ...) and A the propagation of the initial condition (A_0 = 1). Rows of (H_g, A):
    X_0 = (0, 1), X_{k+1} = X_k + (e_k, 0) - c_k lam sum_{l<=k} R_g[k, l] X_l, solved for all
    rows at once as one triangular system."""
    n = response.shape[0]
    dtype = response.dtype
    c = jnp.broadcast_to(jnp.asarray(c, dtype), (n,))
    coupling = c[:, None] * lam
    # unknowns X_1..X_n: X_{k+1} - X_k + c_k lam sum_{l=1..k} R_kl X_l = (e_k, 0)
    # - (c_k lam R_k0 - [k = 0]) X_0
    shifted = jnp.concatenate([response[:, 1:], jnp.zeros_like(response[:, :1])], axis=1)
    system = (coupling * shifted * jnp.tril(jnp.ones((n, n), dtype), -1)
              - jnp.eye(n, k=-1, dtype=dtype) + jnp.eye(n, dtype=dtype))
    start = -(coupling[:, 0] * response[:, 0] - (jnp.arange(n) == 0))
    rhs = jnp.concatenate([jnp.eye(n, dtype=dtype), start[:, None]], axis=1)
    later = triangular.solve_lower(system, rhs, unit_diagonal=True)
    first = jnp.zeros((1, n + 1), dtype).at[0, n].set(1.0)
    kernel = jnp.concatenate([first, later[:-1]])
    return kernel[:, :n], kernel[:, n]


def low_rank_factor(covariance, rank):
    """F (n, rank) with F F^T the best rank-`rank` approximation of a PSD matrix, and the
    largest dropped eigenvalue relative to the top one."""
    values, vectors = jnp.linalg.eigh(covariance)
    values, vectors = values[::-1], vectors[:, ::-1]
    kept = jnp.maximum(values[:rank], 0.0)
    dropped = jnp.where(rank < values.shape[0], jnp.abs(values[min(rank, values.shape[0] - 1)]),
                        0.0)
    return vectors[:, :rank] * jnp.sqrt(kept), dropped / jnp.maximum(jnp.abs(values[0]), 1e-300)


def spike_seed_variance(xi, rho, ds, p):
    """A2_k = D mean_j a_j(s_k)^2 of eq. (G7b): the bulk columns' components along beta_hat,
    a_{k+1} = (1 - ds_k rho_k) a_k - ds_k (2 eps / alpha) xi_k with D E[xi_k xi_l] = Xi_kl
    (ds scalar or (n,))."""
    n = rho.shape[0]
    ds = jnp.broadcast_to(jnp.asarray(ds), (n,))

    def step(w, k):
        new = (1 - ds[k] * rho[k]) * w + (jnp.arange(n) == k)
        return new, w

    _, weights = jax.lax.scan(step, jnp.zeros(n), jnp.arange(n))      # row k: K_k,l for l<k
    weights = weights * (2 * p["eps"] / p["alpha"] * ds)[None, :]
    return jnp.einsum("kl,lj,kj->k", weights, xi, weights)


TIME_BLOCK = 32    # time steps per block of the march and of the bulk solves


def _pad_time(values, padded: int, axes):
    """`values` with `padded` zeros appended along each of `axes` (the time axes)."""
    widths = [(0, 0)] * values.ndim
    for axis in (axes if isinstance(axes, tuple) else (axes,)):
        widths[axis] = (0, padded)
    return jnp.pad(values, widths)


def _blocks(n: int, block: int) -> tuple[int, int, int]:
    """(block, number of blocks, padding) that cover n time points."""
    block = max(1, min(int(block), n))
    count = -(-n // block)
    return block, count, count * block - n


def bulk_rows(factor, bulk, deltas, p, block=TIME_BLOCK):
    """Y = L F (M, n, r) for given residual paths Delta (M, n): the bulk field factor of every
    path, L = (1 + c_g H_g diag(Delta))^{-1}.

    Block forward substitution in time: H_g is shared by all paths, so the earlier blocks' share
    of a block's right-hand side is one matrix product over all paths at once ((block x n) by
    (n x M r)); only the (block x block) diagonal systems are solved path by path."""
    count, n = deltas.shape
    rank = factor.shape[1]
    block, n_blocks, padded = _blocks(n, block)
    c_bulk = 2 * steps(p, n) / p["lam"] * p["eps"] / p["alpha"]
    coupling = _pad_time(bulk * c_bulk[None, :], padded, (0, 1))        # c_g H_g (N, N)
    deltas = _pad_time(deltas, padded, 1)
    factor = _pad_time(factor, padded, 0)
    eye = jnp.eye(block, dtype=coupling.dtype)

    def solve_block(weighted, start):
        # weighted: Delta Y (N, M, r), zero from this block on
        coupling_rows = jax.lax.dynamic_slice_in_dim(coupling, start, block, 0)      # (b, N)
        rhs = (jax.lax.dynamic_slice_in_dim(factor, start, block, 0)[None]
               - jnp.swapaxes(jnp.tensordot(coupling_rows, weighted, axes=1), 0, 1))
        diagonal = jax.lax.dynamic_slice_in_dim(coupling_rows, start, block, 1)     # (b, b)
        delta = jax.lax.dynamic_slice_in_dim(deltas, start, block, 1)               # (M, b)
        y = jax.vmap(triangular.solve_lower)(eye + diagonal[None] * delta[:, None, :],
                                             rhs)                                 # (M, b, r)
        weighted = jax.lax.dynamic_update_slice_in_dim(
            weighted, jnp.swapaxes(delta[:, :, None] * y, 0, 1), start, 0)
        return weighted, y

    starts = jnp.arange(n_blocks) * block
    _, ys = jax.lax.scan(solve_block, jnp.zeros((n_blocks * block, count, rank),
                                                coupling.dtype), starts)
    return jnp.swapaxes(ys, 0, 1).reshape(count, n_blocks * block, rank)[:, :n]


def paths(chi, z, kernel, bulk, factor, a2, p, nu_fixed=None, perturbation=None, rows=None,
          block=TIME_BLOCK):
    """March the sample paths (G6)-(G8) forward in time.

    Args:
        chi: (M, n, 2) Gaussian fields; z: (M,); kernel: H (n, n, 2, 2); bulk: H_g (n, n);
        factor: F (n, r), C_g ~ F F^T; a2: (n,) A2 trajectory; p: scalars.
        nu_fixed: if given, the (n,) spike trajectory to use instead of the average over these
            paths (for the per-path response).
        perturbation: (M, n, 2) added to the fields (for the response).
        rows: if given, the bulk field factors Y (M, n, r) to use (`bulk_rows` of an earlier
            iterate's residuals: the solver's fast path, the same fixed point); otherwise Y is
            marched causally with the residuals of these paths.
        block: time steps per block: the earlier blocks' share of the memory sums is one
            matrix product per block over all paths, the steps inside a block see only the
            block's own past (the same sums, split; any block gives the same paths).

    Returns:
        Phi (M, n, 2), Delta (M, n), nu (n,), fields a (M, n, 2), bulk term m (M, n) and the
        bulk field factor Y (M, n, r) with E[g_k g_l] = Y_k . Y_l on each path.
    """
    n_samples, n = z.shape[0], chi.shape[1]
    alpha, eps = p["alpha"], p["eps"]
    implicit = p.get("implicit", False)
    block, n_blocks, padded = _blocks(n, block)
    ds = _pad_time(steps(p, n), padded, 0)
    weighted_kernel = _pad_time(kernel * field_weights(p, n)[None, :, None, None], padded,
                                (0, 1))                                      # H_kj c_j
    coupling = _pad_time(bulk * (2 * steps(p, n) / p["lam"] * eps / alpha)[None, :], padded,
                         (0, 1))                                             # c_g H_g
    if perturbation is not None:
        chi = chi + perturbation
    chi, factor, a2 = _pad_time(chi, padded, 1), _pad_time(factor, padded, 0), _pad_time(
        a2, padded, 0)
    nu_path = None if nu_fixed is None else _pad_time(nu_fixed, padded, 0)
    given = rows is not None
    variances = _pad_time(jnp.sum(rows**2, axis=-1), padded, 1) if given else None    # (M, N)
    rank = 0 if given else factor.shape[1]

    def run_block(carry, start):
        # history: Phi (M, N, 2), deltas (M, N) and marched Y (M, N, r), zero from start on
        history, deltas, marched, nu = carry
        kernel_rows = jax.lax.dynamic_slice_in_dim(weighted_kernel, start, block, 0)
        past = jnp.einsum("kjab,mjb->mka", kernel_rows, history)              # (M, b, 2)
        within = jax.lax.dynamic_slice_in_dim(kernel_rows, start, block, 1)   # (b, b, 2, 2)
        if not given:
            coupling_rows = jax.lax.dynamic_slice_in_dim(coupling, start, block, 0)
            past_rows = (jax.lax.dynamic_slice_in_dim(factor, start, block, 0)[None]
                         - jnp.einsum("kl,ml,mlr->mkr", coupling_rows, deltas, marched))
            within_bulk = jax.lax.dynamic_slice_in_dim(coupling_rows, start, block, 1)

        def step(inner, i):
            phis, block_deltas, block_rows, nu = inner      # this block's Phi, Delta, Y so far
            k = start + i
            if nu_path is not None:
                nu = nu_path[k]
            a = chi[:, k] - past[:, i] - jnp.einsum("jab,mjb->ma", within[i], phis)
            if given:
                variance = variances[:, k]
            else:
                row = past_rows[:, i] - jnp.einsum("l,ml,mlr->mr", within_bulk[i],
                                                   block_deltas, block_rows)
                block_rows, variance = block_rows.at[:, i].set(row), jnp.sum(row**2, axis=-1)
            m = bulk_term(variance, z, a2[k], p)
            if implicit:
                a = implicit_fields(a, within[i, i], z, nu, m, p)
            delta, g, phi = forces(a, z, nu, m, p)
            new_nu = nu - ds[k] * 2 * eps / alpha * jnp.mean(delta * z * g)
            inner = (phis.at[:, i].set(phi), block_deltas.at[:, i].set(delta), block_rows,
                     new_nu)
            return inner, (delta, nu, a, m)

        dtype = chi.dtype
        inner = (jnp.zeros((n_samples, block, 2), dtype), jnp.zeros((n_samples, block), dtype),
                 jnp.zeros((n_samples, block, rank), dtype), nu)
        (phis, block_deltas, block_rows, nu), out = jax.lax.scan(step, inner, jnp.arange(block))
        history = jax.lax.dynamic_update_slice_in_dim(history, phis, start, 1)
        if not given:
            deltas = jax.lax.dynamic_update_slice_in_dim(deltas, block_deltas, start, 1)
            marched = jax.lax.dynamic_update_slice_in_dim(marched, block_rows, start, 1)
        return (history, deltas, marched, nu), out

    length = n_blocks * block
    unused = 0 if given else length
    start = (jnp.zeros((n_samples, length, 2), chi.dtype),
             jnp.zeros((n_samples, unused), chi.dtype),
             jnp.zeros((n_samples, unused, rank), chi.dtype),
             jnp.asarray(1 / jnp.sqrt(p["dim"]), chi.dtype))
    (history, _, marched, _), (delta, nu, a, m) = jax.lax.scan(
        run_block, start, jnp.arange(n_blocks) * block)
    delta, nu, a, m = (v.reshape(length, *v.shape[2:])[:n] for v in (delta, nu, a, m))
    return (history[:, :n], delta.T, nu, jnp.swapaxes(a, 0, 1), m.T,
            rows if given else marched[:, :n])


def implicit_fields(rhs, coupling, z, nu, m, p):
    """Fields a (M, 2) solving a + coupling Phi(a) = rhs on every path (the backward Euler
    step; coupling = c_k H_kk (2, 2)), by NEWTON_STEPS Newton steps from a = rhs.

    The Jacobian is I + coupling dPhi/da (2 x 2 per path); the coupling is O(c_k / (1 +
    c_k lam)) and Phi smooth, so the steps converge to rounding (`tests/test_dmft_implicit.py`
    checks the step equation to 1e-12; `solve` reports the largest error of every solve)."""
    def one(rhs_1, z_1, m_1):
        def residual(a):
            return a + coupling @ forces(a, z_1, nu, m_1, p)[2] - rhs_1

        def newton(a, _):
            return a - inverse_2x2(jax.jacfwd(residual)(a)) @ residual(a), None

        a, _ = jax.lax.scan(newton, rhs_1, None, length=NEWTON_STEPS)
        return a

    return jax.vmap(one)(rhs, z, m)
