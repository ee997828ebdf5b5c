"""DMFT of the grokking model: D, P -> infinity at P/D fixed, infinite width, solved numerically.

The model is `lazyrich`'s `grokking` experiment with fixed readouts, N -> infinity
(`dynamics="infinite"`), target y = (beta . x)^2 / D and phi(z) = z + eps z^2 / 2. The equations
(numbered as in `dmft/README.md`, our derivation; the paper's appendix was not retrievable) are:

    f = h + (eps / 2 alpha) h^2 + (alpha eps / 2)(g^2 - z^2 / D) + tau + m, Delta = f - b z^2 (G3)
    Phi = (Delta (1 + eps h / alpha), (eps / alpha) Delta (g + kappa^2 z / (D nu)))         (G5)
    a_k = chi_k - c sum_{j<k} H_kj Phi_j,   a = (h, omega),  g = nu z + omega,  c = 2 ds / lam (G6)
    nu' = -(2 eps / alpha) <Delta z g>,   kappa' = -(2 eps / alpha) kappa <Delta>            (G7)
    m' = -(2 eps^2 kappa^2 / lam) Delta - (4 eps / alpha)([Delta / lam] + <Delta>) m           (G8)
    tau' = -2 eps^2 kappa^2 <Delta> [- (4 eps / alpha) <Delta m>],   tau(0) = m(0) = 0         (G4)
    H_{k+1,.} = H_{k,.} + I e_k - c lam sum_{l<=k} R_kl H_{l,.},  R = <dPhi / da>             (G9)
    C_theta = c^2 lam H C_Phi H^T,  C_Phi = <Phi Phi^T>                                       (G10)

in the time s = t / D (t = step x lr_scale, the simulation's `time`), with nu(0) = 1 / sqrt(D),
kappa(0) = 1. chi is the Gaussian field with covariance C_theta; the training-set averages < >
are Monte Carlo averages over `n_samples` sample paths (z ~ N(0, 1), chi drawn by mixing the
previous iterate's forces with a fixed Haar orthogonal matrix, so that the fields' empirical
covariance is exactly C_theta of the empirical C_Phi, which is never square-rooted), and
R is the average over `n_response` paths of the exact per-path response (closed form from
linearising the path, one triangular solve; tested against forward-mode differentiation).
(C_Phi, R) is found by damped fixed-point iteration over the whole time grid. Cost per
iteration O(M n^2 + M^2 n + M_R n^3) for n time points, M samples, M_R response paths; memory
O(n^2 + M n + M^2 + n^2 per response path).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
import xarray as xr

VARIABLES = {
    "train_loss": "training-set MSE of the centred prediction (sample-path average)",
    "test_loss": "population MSE of the centred prediction, x ~ N(0, I) (Gaussian closed form)",
    "v_norm2": "|v|^2 / D, v = alpha m: the linear part of the centred function",
    "beta_M_beta": "beta^T M beta / D^2 (alpha included), overlap with the target",
    "trace_M": "tr(M) / D",
    "frob_M": "||M||_F / D",
    "alignment": "beta^T M beta / (|beta|^2 ||M||_F)",
}


@contextmanager
def _float64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def _check_positive(name: str, value, allow_zero: bool = False) -> np.ndarray:
    array = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name}={value!r}: must be a finite number or a 1-d list of them")
    if np.any(array < 0) or (not allow_zero and np.any(array == 0)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r}: every value must be {bound}")
    return array


def _forces(a, z, nu, kappa, tau, m, alpha, eps, dim, scale):
    """(Delta, g, Phi) of eqs. (G3)-(G5) for fields a = (h, omega) (..., 2); y = scale z^2."""
    h, omega = a[..., 0], a[..., 1]
    g = nu * z + omega
    f = h + eps / (2 * alpha) * h**2 + alpha * eps / 2 * (g**2 - z**2 / dim) + tau + m
    delta = f - scale * z**2
    phi_u = delta * (1 + eps / alpha * h)
    phi_w = eps / alpha * delta * (g + kappa**2 * z / (dim * nu))
    return delta, g, jnp.stack([phi_u, phi_w], axis=-1)


def _paths(chi, z, kernel, p, globals_=None, perturbation=None):
    """March the sample processes (G6)-(G8) forward in time.

    Args:
        chi: (M, n, 2) Gaussian fields; z: (M,); kernel: H (n, n, 2, 2), strictly lower.
        p: scalars alpha, eps, lam, ds, dim.
        globals_: if given, (nu, kappa, <Delta>, tau) trajectories (n,) to use instead of the
            averages over these paths (for the per-path response).
        perturbation: (M, n, 2) added to the fields (for the response).

    Returns:
        Phi (M, n, 2), Delta (M, n), the global trajectories (nu, kappa, <Delta>, tau), each
        (n,), the fields a (M, n, 2) and the memorisation m (M, n).
    """
    n_samples, n = z.shape[0], chi.shape[1]
    alpha, eps, lam, ds, dim = p["alpha"], p["eps"], p["lam"], p["ds"], p["dim"]
    scale = p["scale"]
    c = 2 * ds / lam
    if perturbation is None:
        perturbation = jnp.zeros_like(chi)

    def step(carry, k):
        history, m, nu, kappa, tau = carry
        if globals_ is not None:
            nu, kappa, tau = globals_[0][k], globals_[1][k], globals_[3][k]
        memory = jnp.einsum("jab,mjb->ma", kernel[k], history)
        a = chi[:, k] + perturbation[:, k] - c * memory
        delta, g, phi = _forces(a, z, nu, kappa, tau, m, alpha, eps, dim, scale)
        mean_delta = jnp.mean(delta) if globals_ is None else globals_[2][k]
        history = history.at[:, k].set(phi)
        rich = 4 * eps / alpha
        amplify = p["amplify"]
        new_m = m - ds * (2 * eps**2 * kappa**2 / lam * delta
                          + rich * (amplify * delta / lam + mean_delta) * m)
        new_tau = tau - ds * (2 * eps**2 * kappa**2 * mean_delta
                              + amplify * rich * jnp.mean(delta * m))
        new_nu = nu - ds * 2 * eps / alpha * jnp.mean(delta * z * g)
        new_kappa = kappa - ds * 2 * eps / alpha * kappa * mean_delta
        return (history, new_m, new_nu, new_kappa, new_tau), (delta, nu, kappa, mean_delta, tau,
                                                              a, m)

    start = (jnp.zeros((n_samples, n, 2)), jnp.zeros(n_samples), 1 / jnp.sqrt(dim),
             jnp.ones(()), jnp.zeros(()))
    (history, *_), (delta, nu, kappa, mean_delta, tau, a, m) = jax.lax.scan(step, start,
                                                                            jnp.arange(n))
    return history, delta.T, (nu, kappa, mean_delta, tau), jnp.swapaxes(a, 0, 1), m.T


def _weight_kernel(response, c, lam):
    """H of eq. (G9) from the averaged response R (n, n, 2, 2); H (n, n, 2, 2), H_kj = 0 for
    j >= k."""
    n = response.shape[0]
    eye = jnp.eye(2)

    def row(kernel, k):
        feedback = jnp.einsum("lab,ljbc->jac", response[k], kernel[:n])
        new = kernel[k] - c * lam * feedback + jnp.where(jnp.arange(n)[:, None, None] == k,
                                                         eye, 0.0)
        return kernel.at[k + 1].set(new), None

    kernel, _ = jax.lax.scan(row, jnp.zeros((n + 1, n, 2, 2)), jnp.arange(n))
    return kernel[:n]


def _local(a, m, z, nu, kappa, tau, p):
    """Phi (2,) and Delta of one path at one time, for the local derivatives."""
    delta, _, phi = _forces(a, z, nu, kappa, tau, m, p["alpha"], p["eps"], p["dim"], p["scale"])
    return phi, delta


def _memory_absorption(delta, m, kappa, mean_delta, p):
    """N = L (1 + L)^{-1} (n, n) of one path: linearising eq. (G8), dm = -L dDelta."""
    n, ds, lam, rich = kappa.shape[0], p["ds"], p["lam"], 4 * p["eps"] / p["alpha"]
    decay = 1 - ds * rich * (p["amplify"] * delta / lam + mean_delta)
    gain = ds * (2 * p["eps"] ** 2 * kappa**2 + p["amplify"] * rich * m) / lam

    def row(previous, k):
        current = decay[k - 1] * previous + gain[k - 1] * (jnp.arange(n) == k - 1)
        return current, current

    _, rows = jax.lax.scan(row, jnp.zeros(n), jnp.arange(1, n))
    memory = jnp.concatenate([jnp.zeros((1, n)), rows])          # L, strictly lower
    eye = jnp.eye(n)
    return eye - jax.scipy.linalg.solve_triangular(eye + memory, eye, lower=True)


def _path_response(a, m, delta, z, globals_, kernel, p):
    """Exact response dPhi_k / d(field perturbation)_j of one path, globals held fixed.

    Linearising (G5)-(G8): dPhi = Jt da with Jt = J - e N d (J = dPhi/da, e = dPhi/dm,
    d = dDelta/da, N = L (1 + L)^{-1}, m = -L Delta the memorisation's linear memory), and
    da = j - c H dPhi, so R = Jt (1 + c H Jt)^{-1}: one (2n x 2n) triangular solve.

    Args:
        a: (n, 2) fields, m, delta: (n,), z: scalar; globals_: (nu, kappa, <Delta>, tau);
        kernel: H.
    Returns:
        (n, n, 2, 2) response R_kj.
    """
    n = a.shape[0]
    c = 2 * p["ds"] / p["lam"]
    eye = jnp.eye(n)
    nu, kappa, mean_delta, tau = globals_
    absorbed = _memory_absorption(delta, m, kappa, mean_delta, p)
    local = jax.vmap(jax.jacfwd(_local, argnums=(0, 1)), (0, 0, None, 0, 0, 0, None))
    (jac_phi_a, jac_phi_m), (jac_delta_a, _) = local(a, m, z, nu, kappa, tau, p)
    full = (jnp.einsum("kab,kl->kalb", jac_phi_a, eye)
            - jnp.einsum("ka,kl,lb->kalb", jac_phi_m, absorbed, jac_delta_a))
    full = full.reshape(2 * n, 2 * n)
    closed = jnp.eye(2 * n) + c * jnp.transpose(kernel, (0, 2, 1, 3)).reshape(2 * n, 2 * n) @ full
    response = jax.scipy.linalg.solve_triangular(closed.T, full.T, lower=False).T
    return jnp.transpose(response.reshape(n, 2, n, 2), (0, 2, 1, 3))


def _iterate(state, p, z, mixing, n_response):
    """One fixed-point map (C_Phi, R) -> (C_Phi, R): returns the new forces and response."""
    forces, response = state
    lam, ds = p["lam"], p["ds"]
    c = 2 * ds / lam
    kernel = _weight_kernel(response, c, lam)
    weights = jnp.einsum("kjab,mjb->mka", kernel, forces)          # (M, n, 2): H Phi
    chi = c * jnp.sqrt(lam) * jnp.einsum("nm,mka->nka", mixing, weights)
    new_forces, delta, globals_, a, m = _paths(chi, z, kernel, p)

    def one(args):
        return _path_response(*args, globals_, kernel, p)

    new_response = jnp.mean(jax.lax.map(one, (a[:n_response], m[:n_response],
                                              delta[:n_response], z[:n_response])), axis=0)
    theta = c**2 * lam * jnp.einsum("mka,mkb->kab", weights, weights) / z.shape[0]
    outputs = {"delta": delta, "nu": globals_[0], "kappa": globals_[1], "tau": globals_[3],
               "theta": theta}
    return (new_forces, new_response), outputs


def _statistics(out, alpha, eps, dim, scale):
    """Losses and sufficient statistics (eqs. (G11)-(G12)) from one iterate's outputs."""
    nu, tau = out["nu"], out["tau"]
    c_uu, c_uw, c_ww = out["theta"][:, 0, 0], out["theta"][:, 0, 1], out["theta"][:, 1, 1]
    a, b = eps / (2 * alpha), alpha * eps / 2
    zeros = jnp.zeros_like(nu)
    # f - y = tau + h + xi^T A xi over xi = (h, omega, z) with covariance Sigma
    quad = jnp.stack([jnp.stack([a + zeros, zeros, zeros], -1),
                      jnp.stack([zeros, b + zeros, b * nu], -1),
                      jnp.stack([zeros, b * nu, b * nu**2 - b / dim - scale], -1)], -2)
    sigma = jnp.stack([jnp.stack([c_uu, c_uw, zeros], -1),
                       jnp.stack([c_uw, c_ww, zeros], -1),
                       jnp.stack([zeros, zeros, 1 + zeros], -1)], -2)
    product = quad @ sigma
    trace = jnp.trace(product, axis1=-2, axis2=-1)
    test = (tau + trace) ** 2 + c_uu + 2 * jnp.trace(product @ product, axis1=-2, axis2=-1)
    spike = b * (nu**2 - 1 / dim)
    trace_m = a * c_uu + tau * (dim - 1) / dim + b * (nu**2 + c_ww - 1 / dim)
    frob2 = (tau**2 * (dim - 1) / dim**2 + 2 * tau * (a * c_uu + b * c_ww) / dim
             + a**2 * c_uu**2 + b**2 * (nu**2 + c_ww) ** 2 + 2 * a * b * c_uw**2
             - 2 * b**2 * nu**2 / dim + b**2 / dim**2)
    frob = jnp.sqrt(jnp.maximum(frob2, 0.0))
    return {"train_loss": jnp.mean(out["delta"] ** 2, axis=0), "test_loss": test,
            "v_norm2": c_uu, "beta_M_beta": scale * spike, "trace_M": trace_m, "frob_M": frob,
            "alignment": jnp.where(frob > 0, spike / jnp.where(frob > 0, frob, 1), 0.0)}


def solve(alpha, eps, P_over_D: float, lr_scale: float = 0.5, t_max: float = 10_000.0,
          dt: float = 50.0, *, D: int = 100, target_scale=1.0, n_samples: int = 1000,
          n_response: int = 8, amplified_memorisation: bool = False,
          damping: float = 0.6, tol: float = 1e-6, max_iter: int = 200,
          seed: int = 0) -> xr.Dataset:
    """DMFT learning curves of the infinite-width grokking model, batched over alpha and eps.

    Args:
        alpha, eps: output scale(s) and quadratic coefficient(s); scalars or 1-d lists, every
            combination is solved (vmap).
        P_over_D: lam = P / D, training examples per input dimension.
        lr_scale: the simulation's learning rate per hidden unit; only sets `step` = time /
            lr_scale (gradient flow in time; GD at this lr_scale agrees to O(lr_scale / D)).
        t_max, dt: horizon and grid spacing in simulation time units (time = step x lr_scale).
        D: input dimension; enters only the time unit (s = t / D) and the spike's initial
            overlap nu(0) = 1/sqrt(D) (the grokking time grows like D log D).
        n_samples: Monte Carlo sample paths M; n_response: paths used for the response R.
        damping: weight of the new iterate; tol: stop when the largest change of the train and
            test curves relative to their scale is below tol; max_iter: iteration cap.
        target_scale: b in y = b z^2, z = beta . x / |beta| (b = |beta|^2 / D of a finite-D
            teacher; 1 in the limit); scalar or 1-d list, batched like alpha and eps.
        amplified_memorisation: include the self-amplification of the memorisation
            (terms in brackets in G8 and G4; see dmft/README.md: it improves the spike but
            breaks the linear part after grokking, so it is off by default).
        seed: seed of the fixed Monte Carlo draws (z is stratified: normal quantiles of
            (i + 1/2) / M in a random order).

    Returns:
        Dataset over (alpha, eps, target_scale, time) with the variables in `VARIABLES`,
        coordinates `time` (simulation units) and `step` = time / lr_scale; attrs
        `iterations`, `residual` (final relative change), `converged`.
    """
    alphas, epss = _check_positive("alpha", alpha), _check_positive("eps", eps, True)
    scales = _check_positive("target_scale", target_scale)
    lam = float(_check_positive("P_over_D", P_over_D)[0])
    lr_scale = float(_check_positive("lr_scale", lr_scale)[0])
    dt, t_max = float(_check_positive("dt", dt)[0]), float(_check_positive("t_max", t_max)[0])
    if t_max < dt:
        raise ValueError(f"t_max={t_max!r} must be at least dt={dt!r}")
    if not isinstance(D, int | np.integer) or D < 2:
        raise ValueError(f"D={D!r}: must be an integer >= 2")
    for name, value, low in (("n_samples", n_samples, 8), ("n_response", n_response, 1),
                             ("max_iter", max_iter, 1)):
        if not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name}={value!r}: must be an integer >= {low}")
    if n_response > n_samples:
        raise ValueError(f"n_response={n_response} must not exceed n_samples={n_samples}")
    if not 0 < damping <= 1:
        raise ValueError(f"damping={damping!r}: must be in (0, 1]")
    ds = dt / D
    fastest = 2 * (1 + 1 / math.sqrt(lam)) ** 2     # top of the Marchenko-Pastur rate
    if ds * fastest >= 2:
        raise ValueError(f"dt={dt!r} is beyond the explicit scheme's stability limit "
                         f"dt < {2 * D / fastest:.4g} for D={D}, P_over_D={lam}")
    n = int(round(t_max / dt)) + 1
    with _float64():
        rng = np.random.default_rng(seed)
        quantiles = scipy.special.ndtri((np.arange(n_samples) + 0.5) / n_samples)
        z = jnp.asarray(rng.permutation(quantiles))
        # Haar orthogonal mixing: the fields' empirical covariance is G10 exactly
        orthogonal, upper = np.linalg.qr(rng.normal(size=(n_samples, n_samples)))
        mixing = jnp.asarray(orthogonal * np.sign(np.diag(upper)))
        grid = [jnp.asarray(g.ravel()) for g in np.meshgrid(alphas, epss, scales,
                                                            indexing="ij")]

        def iterate(state, alpha_1, eps_1, scale_1):
            p = {"alpha": alpha_1, "eps": eps_1, "lam": lam, "ds": ds, "dim": D,
                 "scale": scale_1, "amplify": float(bool(amplified_memorisation))}
            new, out = _iterate(state, p, z, mixing, n_response)
            return new, _statistics(out, alpha_1, eps_1, D, scale_1)

        batched = jax.jit(jax.vmap(iterate))
        batch = grid[0].shape[0]
        state = (jnp.zeros((batch, n_samples, n, 2)), jnp.zeros((batch, n, n, 2, 2)))
        previous, residual, iterations = None, np.inf, 0
        while iterations < max_iter and residual > tol:
            new, stats = batched(state, *grid)
            state = jax.tree_util.tree_map(lambda old, upd: (1 - damping) * old + damping * upd,
                                           state, new)
            curves = np.stack([np.asarray(stats["train_loss"]), np.asarray(stats["test_loss"])])
            if previous is not None:
                scale = np.max(np.abs(curves), axis=-1, keepdims=True)
                residual = float(np.max(np.abs(curves - previous) / scale))
            previous, iterations = curves, iterations + 1
        stats = {k: np.asarray(v, np.float64).reshape(len(alphas), len(epss), len(scales), n)
                 for k, v in stats.items()}
    if not all(np.all(np.isfinite(v)) for v in stats.values()):
        raise ValueError(f"the iteration diverged (dt={dt!r}): the explicit scheme needs "
                         f"dt (4 eps / alpha) |Delta| / (D P_over_D) << 1 in the rich regime; "
                         f"reduce dt")
    time = np.arange(n) * dt
    return xr.Dataset(
        {k: (("alpha", "eps", "target_scale", "time"), v, {"description": VARIABLES[k]})
         for k, v in stats.items()},
        coords={"alpha": alphas, "eps": epss, "target_scale": scales, "time": time,
                "step": ("time", time / lr_scale)},
        attrs={"theory": "DMFT (D, P -> inf, P/D fixed, N -> inf)", "P_over_D": lam, "D": D,
               "lr_scale": lr_scale, "dt": dt, "n_samples": n_samples,
               "n_response": n_response, "damping": damping, "tol": tol,
               "iterations": iterations, "residual": residual,
               "converged": int(residual <= tol)})
