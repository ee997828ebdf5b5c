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


def weight_kernel(response, c, lam, implicit=False):
    """H of eq. (G9) from the averaged response R (n, n, 2, 2); H (n, n, 2, 2).

    c: scalar or (n,) `field_weights`. Explicit: H_{k+1,.} = H_{k,.} + I e_k
    - c_k lam sum_{l<=k} R_kl H_{l,.}, H_kj = 0 for j >= k. Implicit (backward Euler):
    (I + c_k lam R_kk) H_{k,.} = H_{k-1,.} + I e_k - c_k lam sum_{l<k} R_kl H_{l,.}, so H has
    its equal-time blocks H_kk."""
    n = response.shape[0]
    c = jnp.broadcast_to(jnp.asarray(c), (n,))
    eye = jnp.eye(2)
    identity = jnp.arange(n)[:, None, None]

    if not implicit:
        def row(kernel, k):
            feedback = jnp.einsum("lab,ljbc->jac", response[k], kernel[:n])
            new = kernel[k] - c[k] * lam * feedback + jnp.where(identity == k, eye, 0.0)
            return kernel.at[k + 1].set(new), None

        kernel, _ = jax.lax.scan(row, jnp.zeros((n + 1, n, 2, 2)), jnp.arange(n))
        return kernel[:n]

    def implicit_row(carry, k):
        kernel, previous = carry
        # rows l >= k of `kernel` are still zero: the sum runs over l < k
        feedback = jnp.einsum("lab,ljbc->jac", response[k], kernel)
        right = previous + jnp.where(identity == k, eye, 0.0) - c[k] * lam * feedback
        new = jnp.einsum("ab,jbc->jac", inverse_2x2(eye + c[k] * lam * response[k, k]),
                         right)
        return (kernel.at[k].set(new), new), None

    (kernel, _), _ = jax.lax.scan(implicit_row, (jnp.zeros((n, n, 2, 2)),
                                                 jnp.zeros((n, 2, 2))), jnp.arange(n))
    return kernel


def bulk_kernel(response, c, lam):
    """(H_g (n, n) strictly lower, A (n,)) of eq. (G9b) from the bulk response R_g (n, n).

    theta_{k+1} = theta_k - c_k [eta_k + lam sum_{l<=k} R_g[k, l] theta_l] (c scalar or (n,),
    2 ds[k] / lam): H_g is the response to the force eta (theta_k = -sum_j c_j H_g[k, j] eta_j
    + ...) and A the propagation of the initial condition (A_0 = 1)."""
    n = response.shape[0]
    c = jnp.broadcast_to(jnp.asarray(c), (n,))
    # column n carries the initial condition: A_k = kernel[k, n]
    start = jnp.zeros((n + 1, n + 1)).at[0, n].set(1.0)

    def row(kernel, k):
        new = kernel[k] - c[k] * lam * response[k] @ kernel[:n]
        new = new + (jnp.arange(n + 1) == k)
        return kernel.at[k + 1].set(new), None

    kernel, _ = jax.lax.scan(row, start, jnp.arange(n))
    return kernel[:n, :n], kernel[:n, n]


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


def bulk_rows(factor, bulk, deltas, p, chunk=128):
    """Y = L F (M, n, r) for given residual paths Delta (M, n): the bulk field factor of every
    path, L = (1 + c_g H_g diag(Delta))^{-1}, by triangular solves in chunks of paths."""
    n = bulk.shape[0]
    c_bulk = 2 * steps(p, n) / p["lam"] * p["eps"] / p["alpha"]
    eye = jnp.eye(n)

    def one(delta):
        return jax.scipy.linalg.solve_triangular(eye + bulk * (c_bulk * delta)[None, :], factor,
                                                 lower=True)

    count, n = deltas.shape
    chunk = min(chunk, count)
    padded = -count % chunk
    blocks = jnp.concatenate([deltas, jnp.zeros((padded, n))]).reshape(-1, chunk, n)
    rows = jax.lax.map(jax.vmap(one), blocks)
    return rows.reshape(-1, n, factor.shape[1])[:count]


def paths(chi, z, kernel, bulk, factor, a2, p, nu_fixed=None, perturbation=None, rows=None):
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

    Returns:
        Phi (M, n, 2), Delta (M, n), nu (n,), fields a (M, n, 2), bulk term m (M, n) and the
        bulk field factor Y (M, n, r) with E[g_k g_l] = Y_k . Y_l on each path.
    """
    n_samples, n = z.shape[0], chi.shape[1]
    alpha, eps = p["alpha"], p["eps"]
    ds = steps(p, n)
    weighted_kernel = kernel * field_weights(p, n)[None, :, None, None]      # H_kj c_j
    c_bulk = 2 * ds / p["lam"] * eps / alpha
    implicit = p.get("implicit", False)
    if perturbation is None:
        perturbation = jnp.zeros_like(chi)

    given = rows is not None
    if given:
        variances = jnp.sum(rows**2, axis=-1)                             # (M, n)

    def step(carry, k):
        history, deltas, marched, nu = carry
        if nu_fixed is not None:
            nu = nu_fixed[k]
        # history holds Phi_j for j < k only: the sum is over the past
        a = chi[:, k] + perturbation[:, k] - jnp.einsum("jab,mjb->ma", weighted_kernel[k],
                                                        history)
        if given:
            variance = variances[:, k]
        else:
            row = factor[k] - jnp.einsum("l,ml,mlr->mr", c_bulk * bulk[k], deltas, marched)
            marched, variance = marched.at[:, k].set(row), jnp.sum(row**2, axis=-1)
        m = bulk_term(variance, z, a2[k], p)
        if implicit:
            a = implicit_fields(a, weighted_kernel[k, k], z, nu, m, p)
        delta, g, phi = forces(a, z, nu, m, p)
        new_nu = nu - ds[k] * 2 * eps / alpha * jnp.mean(delta * z * g)
        carry = (history.at[:, k].set(phi), deltas.at[:, k].set(delta), marched, new_nu)
        return carry, (delta, nu, a, m)

    shape = (0, 0, 0) if given else (n_samples, n, factor.shape[1])
    start = (jnp.zeros((n_samples, n, 2)), jnp.zeros((n_samples, n)), jnp.zeros(shape),
             1 / jnp.sqrt(p["dim"]))
    (history, _, marched, _), (delta, nu, a, m) = jax.lax.scan(step, start, jnp.arange(n))
    return history, delta.T, nu, jnp.swapaxes(a, 0, 1), m.T, rows if given else marched


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
