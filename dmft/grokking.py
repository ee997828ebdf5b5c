"""DMFT of the grokking model: D, P -> infinity at P/D fixed, infinite width, solved numerically.

The model is `lazyrich`'s `grokking` experiment with fixed readouts, N -> infinity
(`dynamics="infinite"`), target y = (beta . x)^2 / D and phi(z) = z + eps z^2 / 2. The neuron
covariance is Cov = U U^T and every column of U is a weight vector trained like the linear part
u; the equations (numbered as in `dmft/README.md`, our derivation; the paper's appendix was not
retrievable) are, per training example (path), in the time s = t / D:

    f = h + (eps / 2 alpha) h^2 + (alpha eps / 2)(g^2 - z^2 / D) + m,  Delta = f - b z^2 (G3)
    m = (alpha eps / 2)[(D - 1)/D (q - 1) + z^2 A2 / D],  q = (L C_g L^T)_ss       (G4)
    Phi = (Delta (1 + eps h / alpha), (eps / alpha) Delta g),  g = nu z + omega     (G5)
    a_k = chi_k - c sum_{j<k} H_kj Phi_j,  a = (h, omega),  chi ~ GP(0, C_theta)          (G6)
    r = L chi_g,  L = (1 + c (eps / alpha) H_g diag(Delta))^{-1},  c = 2 ds / lam        (G6b)
    nu' = -(2 eps / alpha) <Delta z g>;  A2: bulk columns' beta_hat parts   (G7, G7b)
    H_{k+1,.} = H_{k,.} + I e_k - c lam sum_{l<=k} R_kl H_{l,.},  R = <dPhi / da>   (G9)
    C_theta = c^2 lam H C_Phi H^T,  C_g = A A^T + c^2 lam H_g C_Phi^g H_g^T   (G10, G10b)

with nu(0) = 1 / sqrt(D), t = step x lr_scale the simulation's `time`. The training-set averages
< > are Monte Carlo averages over `n_samples` sample paths (z stratified, chi drawn by mixing the
previous iterate's forces with a fixed Haar orthogonal matrix, so that the fields' empirical
covariance is exactly C_theta of the empirical C_Phi, never square-rooted); each path's bulk
field is an exact Gaussian average given its residuals (C_g kept at rank `bulk_rank`, one
triangular solve per path). R's equal-time blocks average all paths, its memory the
`n_response` paths' exact responses (closed form, tested against forward-mode
differentiation). Everything is found by damped fixed-point iteration over the whole time grid
(in growing time windows where that blows up: the map is causal), one compiled program per
iteration, compiled once per process for each (D, rank, scheme, shapes).
Time steps: explicit (forward Euler, below the stability limit) or, with scheme="implicit",
backward Euler for the fields h, omega (stable at any step) on any grid `times`
(`adaptive_times`: fine while the linear fit settles, coarse where only the features move).
Cost per iteration O(M n^2 (r + 2) + M^2 n + M_R n^3) for n time points, M samples, rank r, M_R
response paths; memory O(M n r + M^2 + n^2). The path machinery is in
`dmft/grokking_paths.py`.
"""

from __future__ import annotations

import functools
import sys
import warnings
from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
import xarray as xr

from dmft import grokking_paths as paths_
from dmft import grokking_response as response_
from dmft.checkpoint import Checkpoint, fingerprint
from dmft.fixed_point import ConvergenceWarning, iterate_to_fixed_point
from dmft.grokking_checks import DTYPES, RESPONSE_SAMPLING, check_solve_arguments
from dmft.grokking_cost import (
    SCHEMES,
    Cost,
    adaptive_times,
    default_dt,
    estimate_cost,
    stability_limit_dt,
)
from dmft.grokking_response import response_paths
from dmft.grokking_statistics import MC_SPREAD_TOLERANCE, VARIABLES, check_spread, statistics
from lazyrich.core.checks import require_memory
from lazyrich.core.devices import matmul_precision_context

__all__ = ["MC_SPREAD_TOLERANCE", "RESPONSE_SAMPLING", "SCHEMES", "VARIABLES", "Cost",
           "adaptive_times", "default_dt", "estimate_cost", "implicit_step_tolerance",
           "response_paths", "solve", "stability_limit_dt"]

@contextmanager
def _precision(dtype: str):
    """JAX's 64-bit mode on for dtype "float64", off for "float32", restored afterwards; full
    float32 matrix products either way (JAX's default on GPUs is TF32, 10-bit operands, which
    left the float32 implicit steps' Newton error at 7e-5 on an H200 and moved the grokking
    time by several %)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", dtype == "float64")
    try:
        with matmul_precision_context("float32"):
            yield
    finally:
        jax.config.update("jax_enable_x64", previous)


def _iterate(state, p, z, mixing, n_response, rank):
    """One fixed-point map over the whole time grid: returns the new state and the outputs.

    state: forces Phi (M, n, 2), response R (n, n, 2, 2), bulk response R_g (n, n), bulk force
    covariance C_Phi^g (n, n), the spike seed's force covariance Xi (n, n) and the spike rate
    rho (n,), and the residuals Delta (M, n) that set the bulk fields' propagators (lagged by
    one iteration, which leaves the fixed point unchanged and turns the bulk march into
    triangular solves)."""
    forces, response, response_g, noise_g, xi, rho, lagged = state
    lam, alpha, eps = p["lam"], p["alpha"], p["eps"]
    n = lagged.shape[1]
    implicit = p.get("implicit", False)
    ds = paths_.steps(p, n)                                  # forward steps (explicit parts)
    c = paths_.field_weights(p, n)                           # the forces' weights in the fields
    c_bulk = 2 * ds / lam
    kernel = paths_.weight_kernel(response, c, lam, implicit)
    bulk, initial = paths_.bulk_kernel(response_g, c_bulk, lam)
    bulk_c = bulk * c_bulk[None, :]
    covariance_g = jnp.outer(initial, initial) + lam * bulk_c @ noise_g @ bulk_c.T   # (G10b)
    factor, dropped = paths_.low_rank_factor(covariance_g, rank)
    a2 = paths_.spike_seed_variance(xi, rho, ds, p)
    weights = jnp.einsum("kjab,j,mjb->mka", kernel, c, forces)     # (M, n, 2): H diag(c) Phi
    chi = jnp.sqrt(lam) * jnp.einsum("nm,mka->nka", mixing, weights)
    rows = paths_.bulk_rows(factor, bulk, lagged, p)          # Y from the previous residuals
    new_forces, delta, nu, a, m, rows = paths_.paths(chi, z, kernel, bulk, factor, a2, p,
                                                     rows=rows)

    def accumulate(totals, args):
        *path, weight = args
        response, bulk_response = response_.path_response(*path, nu, kernel, bulk, p)
        return (totals[0] + weight * response, totals[1] + weight * bulk_response), None

    # summed in a scan, not stacked: memory O(n^2) instead of O(M_R n^2); the weights sum to 1
    index, weight = ((jnp.arange(n_response), jnp.full(n_response, 1.0 / n_response))
                     if isinstance(n_response, int) else n_response)
    picked = (a[index], m[index], delta[index], rows[index], z[index], weight)
    (responses, bulk_responses), _ = jax.lax.scan(
        accumulate, (jnp.zeros((n, n, 2, 2)), jnp.zeros((n, n))), picked)
    # equal-time blocks R_kk equal the local Jacobian dPhi_k / da_k of each path (the memory
    # terms are strictly causal): average them over all M paths, the memory over M_R paths
    local = response_.local_jacobian(a, m, z, nu, p)                          # (M, n, 2, 2)
    if implicit:
        # a perturbation at s_k feeds back within the step: R_kk = J (I + c_k H_kk J)^-1
        within = jnp.eye(2) + jnp.einsum("k,kab,mkbc->mkac", c,
                                         kernel[jnp.arange(n), jnp.arange(n)], local)
        local = jnp.einsum("mkab,mkbc->mkac", local, paths_.inverse_2x2(within))
    equal_time = jnp.eye(n)[:, :, None, None]
    new_response = (responses * (1 - equal_time)
                    + equal_time * jnp.mean(local, axis=0)[:, None])
    off_diagonal = bulk_responses * (1 - jnp.eye(n))
    new_response_g = off_diagonal + eps / alpha * jnp.diag(jnp.mean(delta, axis=0))
    weighted = delta[:, :, None] * rows                                  # (M, n, r)
    new_noise_g = (eps / alpha) ** 2 * jnp.einsum("mkr,mjr->kj", weighted, weighted) / z.shape[0]
    new_xi = jnp.einsum("m,mkr,mjr->kj", z**2, weighted, weighted) / (lam * z.shape[0])
    new_rho = 2 * eps / alpha * jnp.mean(delta * z[:, None] ** 2, axis=0)
    theta = lam * jnp.einsum("mka,mkb->kab", weights, weights) / z.shape[0]
    step_error = jnp.zeros(())
    if implicit:
        # how well each path's Newton steps solved a_k = chi_k - sum_{j<=k} c_j H_kj Phi_j
        rebuilt = chi - jnp.einsum("kjab,j,mjb->mka", kernel, c, new_forces)
        step_error = jnp.max(jnp.abs(rebuilt - a)) / jnp.maximum(1.0, jnp.max(jnp.abs(a)))
    outputs = {"delta": delta, "nu": nu, "bulk": jnp.diag(covariance_g), "a2": a2,
               "theta": theta, "dropped": jnp.stack([dropped, step_error])}
    return (new_forces, new_response, new_response_g, new_noise_g, new_xi, new_rho,
            delta), outputs


# relative error of the Newton-solved implicit field steps: 1e-8, or 100 rounding units of a
# float32 solve (its Newton residual cannot fall below a few units: not a too-long step)
IMPLICIT_STEP_TOLERANCE = 1e-8


def implicit_step_tolerance(dtype: str) -> float:
    """The Newton residual above which `solve` warns that its implicit steps are too long
    (dtype "float64" or "float32")."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}")
    return max(IMPLICIT_STEP_TOLERANCE, 100 * float(np.finfo(dtype).eps))


def _train_and_test(outputs):
    """The curves whose change is the fixed point's residual: (2, batch, n)."""
    return jnp.stack([outputs[0]["train_loss"], outputs[0]["test_loss"]])


@functools.lru_cache(maxsize=32)
def _compiled_iteration(dim: int, rank: int, implicit: bool):
    """The fixed-point map `_iterate`, vmapped over the parameter points and the Monte Carlo
    draws and jitted, for one (D, bulk rank, scheme): shapes, dtypes and grids are arguments,
    so solves that share them (a phase diagram's points, repeated calls) compile once per
    process.

    Called as f(state, alpha, eps, scale, lam, ds, z, mixing, responders) with S draws and B
    parameter points: the first five batched over S x B (draw-major), ds (scalar or (n,))
    shared, z (S, M), mixing (S, M, M) and responders ((S, M_R) index, (S, M_R) weight) one
    per draw."""
    def iterate(state, alpha_1, eps_1, scale_1, lam_1, ds, z, mixing, responders):
        p = {"alpha": alpha_1, "eps": eps_1, "lam": lam_1, "ds": ds, "dim": dim,
             "scale": scale_1, "implicit": implicit}
        new, out = _iterate(state, p, z, mixing, responders, rank)
        return new, (statistics(out, alpha_1, eps_1, dim, scale_1), out["dropped"])

    points = jax.vmap(iterate, in_axes=(0, 0, 0, 0, 0, None, None, None, None))
    draws = jax.vmap(points, in_axes=(0, 0, 0, 0, 0, None, 0, 0, 0))

    def batched(state, alpha, eps, scale, lam, ds, z, mixing, responders):
        count = z.shape[0]

        def split(x):
            return x.reshape(count, x.shape[0] // count, *x.shape[1:])

        def merge(x):
            return x.reshape(-1, *x.shape[2:])

        out = draws(*jax.tree_util.tree_map(split, (state, alpha, eps, scale, lam)), ds, z,
                    mixing, responders)
        return jax.tree_util.tree_map(merge, out)

    return jax.jit(batched)


def _draw(seed: int, n_samples: int, n_response: int, sampling: str):
    """One Monte Carlo draw: z (M,) stratified (normal quantiles of (i + 1/2) / M in a random
    order), a Haar orthogonal mixing (M, M) (the fields' empirical covariance is G10 exactly)
    and the response paths' (M_R,) index and weight (`response_paths`)."""
    rng = np.random.default_rng(seed)
    z = rng.permutation(scipy.special.ndtri((np.arange(n_samples) + 0.5) / n_samples))
    orthogonal, upper = np.linalg.qr(rng.normal(size=(n_samples, n_samples)))
    return (z, orthogonal * np.sign(np.diag(upper)),
            *response_paths(z, n_response, sampling))


def solve(alpha, eps, P_over_D, lr_scale: float = 0.5, t_max: float | None = None,
          dt: float | None = None, *, D: int = 100, target_scale=1.0, n_samples: int = 1000,
          n_response: int = 64, response_sampling: str = "first", bulk_rank: int = 16,
          damping: float = 0.6, anderson: int = 0, tol: float = 1e-6, max_iter: int = 200,
          seed: int | list[int] = 0, dtype: str = "float64", scheme: str = "explicit", times=None,
          checkpoint=None, progress: bool = True) -> xr.Dataset:
    """DMFT learning curves of the infinite-width grokking model, batched over alpha, eps,
    target_scale and P_over_D.

    Args:
        alpha, eps: output scale(s) and quadratic coefficient(s); scalars or 1-d lists, every
            combination is solved (vmap).
        P_over_D: lam = P / D, training examples per input dimension; a scalar, or a 1-d list
            batched like alpha (then a `P_over_D` dimension of the result).
        lr_scale: the simulation's learning rate per hidden unit; only sets `step` = time /
            lr_scale (gradient flow in time; GD at this lr_scale agrees to O(lr_scale / D)).
        t_max, dt: horizon (None: 10,000) and grid spacing in simulation time units (time =
            step x lr_scale); dt=None takes half the stability limit D / (1 + lam^-1/2)^2
            (`default_dt`).
        scheme: "explicit" (default; forward Euler, every step below the stability limit) or
            "implicit" (backward Euler for the fields h, omega: stable at any step, so the grid
            follows the slow feature dynamics; dmft/README.md).
        times: (n,) grid in simulation time from 0, increasing, possibly non-uniform
            (`adaptive_times`); replaces t_max and dt (leave both None).
        D: input dimension; enters only the time unit (s = t / D) and the spike's initial
            overlap nu(0) = 1/sqrt(D) (the grokking time grows like D log D).
        n_samples: Monte Carlo sample paths M; n_response: paths whose exact responses give
            the memory part of R and R_g (equal-time parts average all M paths);
        response_sampling: how those paths are picked (`response_paths`): "first" (default,
            the first M_R) or "stratified" (the largest |z| exactly, strata of |z| for the
            rest: closer to the all-paths average at M_R = 16 and 256, not at 64; README).
        damping: weight of the new iterate (of the new residual under Anderson mixing);
        anderson: earlier residuals Anderson mixing combines (0: plain damped iteration; both
            reach the same fixed point).
        tol: stop when the largest change of the train and test curves relative to their
            scale is below tol; max_iter: iteration cap (reaching it warns
            `dmft.ConvergenceWarning`).
        target_scale: b in y = b z^2, z = beta . x / |beta| (b = |beta|^2 / D of a finite-D
            teacher; 1 in the limit); scalar or 1-d list, batched like alpha and eps.
        bulk_rank: rank kept of the bulk field covariance C_g (n x n; its spectrum decays
            fast, the attr `bulk_truncation` reports the largest dropped eigenvalue relative
            to the top one).
        seed: seed of the fixed Monte Carlo draws (z is stratified: normal quantiles of
            (i + 1/2) / M in a random order), or a list of distinct seeds: one draw each,
            solved together (an `mc_seed` dimension of the result; attrs `mc_spread`), and
            `solve` warns ConvergenceWarning when their grokking or half-drop times differ by
            more than MC_SPREAD_TOLERANCE (5%). In the richest settings (alpha <= 0.25, eps
            >= 0.05, P/D = 3) different seeds converge to different solutions
            (dmft/README.md): solve two there before trusting one. Two draws of half the
            paths (n_samples and n_response halved) cost about one draw of all of them.
        dtype: "float64" (default) or "float32" for the whole solve; float32 is ~1.4x faster
            on CPU and agreed with float64 to ~1e-6 (relative L2 of the curves) wherever it
            was compared (dmft/README.md); it needs tol >= 1e-6. Results are float64 arrays
            either way, `attrs["dtype"]` says which was used.
        checkpoint: a file path (.npz): the iteration is saved there every minute and when it
            stops, and a call with the same arguments resumes from it (`dmft.checkpoint`).
        progress: show the iteration, residual and estimated time left.

    Returns:
        Dataset over (alpha, eps, target_scale[, P_over_D][, mc_seed], time) with the variables in
        `VARIABLES`, coordinates `time` (simulation units) and `step` = time / lr_scale; attrs
        `iterations`, `residual` (final relative change), `converged`, `scheme`, `grid`,
        `mc_spread` (with a list of seeds: the largest relative distance of one draw's
        grokking or half-drop time from the draws' mean, `grokking_statistics.seed_spread`),
        `implicit_step_error` (largest relative error of the Newton-solved implicit steps, 0
        for the explicit scheme; above 1e-8, float32: 100 rounding units, `solve` warns
        ConvergenceWarning).

    Raises:
        MemoryEstimateError (a MemoryError) before allocating when `estimate_cost` says the
        arrays would not fit.
    """
    a = check_solve_arguments(locals())
    alphas, epss, scales, lams = a["alpha"], a["eps"], a["target_scale"], a["P_over_D"]
    dt, n_samples, n_response = a["dt"], a["n_samples"], a["n_response"]
    batch = alphas.size * epss.size * scales.size * lams.size
    seeds = a["seed"] if isinstance(a["seed"], list) else [a["seed"]]
    cost = estimate_cost(a["t_max"], dt, D=a["D"], P_over_D=lams, batch=batch, draws=len(seeds),
                         n_samples=n_samples, n_response=n_response, bulk_rank=a["bulk_rank"],
                         anderson=a["anderson"], times=a["times"])
    require_memory(cost.memory_bytes,
                   f"dmft.grokking.solve with {cost.time_points} time points (t_max="
                   f"{a['t_max']:g}, dt={dt:.4g}), {batch} parameter point(s) x {len(seeds)} "
                   f"draw(s), n_samples="
                   f"{n_samples}, bulk_rank={a['bulk_rank']}",
                   (f"raise dt= (stable up to {stability_limit_dt(a['D'], lams):.4g}; any dt "
                    f"with scheme='implicit'), shorten t_max=" if times is None else
                    "pass fewer `times` (adaptive_times with a larger slow_ds_per_alpha_over_eps)")
                   + ", or solve fewer alpha/eps/target_scale/P_over_D values or seeds at once")
    n, time = cost.time_points, a["times"]
    uniform = bool(np.allclose(np.diff(time), dt, rtol=1e-9, atol=0))
    # forward steps in s = t / D (the last one is not used); a uniform grid keeps a scalar
    ds = dt / a["D"] if uniform else np.append(np.diff(time), dt) / a["D"]
    with _precision(a["dtype"]):
        # inputs built in numpy at the solve's precision and copied over (device_put): eager
        # jnp ops, jnp.asarray included, each compile a small program (~35 of them, ~0.7 s
        # of a 7 s solve)
        real = np.float64 if a["dtype"] == "float64" else np.float32

        def device(values):
            values = np.asarray(values)
            return jax.device_put(values.astype(real) if values.dtype.kind == "f" else values)

        draws = [_draw(one, n_samples, n_response, a["response_sampling"]) for one in seeds]
        z, mixing, index, weight = (device(np.stack(part)) for part in zip(*draws, strict=True))
        responders = (index, weight)
        grid = [device(np.tile(g.ravel(), len(seeds)))
                for g in np.meshgrid(alphas, epss, scales, lams, indexing="ij")]
        rank = min(a["bulk_rank"], n)

        batched = _compiled_iteration(a["D"], rank, a["scheme"] == "implicit")
        steps = device(ds)
        batch *= len(seeds)
        state = tuple(device(np.zeros(shape)) for shape in (
            (batch, n_samples, n, 2), (batch, n, n, 2, 2), (batch, n, n), (batch, n, n),
            (batch, n, n), (batch, n), (batch, n_samples, n)))
        k = np.arange(n)
        later = np.maximum(k[:, None], k[None, :])
        # the time each state entry belongs to (the map is causal): the fixed point falls back
        # to time windows when the whole-grid iteration diverges
        horizon = (k[None, :, None], later[:, :, None, None], later, later, later, k,
                   k[None, :])
        if progress:
            print(f"dmft.grokking.solve: {cost}", file=sys.stderr)
        _, (stats, dropped), iterations, residual = iterate_to_fixed_point(
            batched, state, _train_and_test, args=(*grid, steps, z, mixing, responders),
            damping=a["damping"], tol=a["tol"], max_iter=a["max_iter"], progress=progress,
            history=a["anderson"], horizon=horizon, return_state=False,
            checkpoint=a["checkpoint"] and Checkpoint(a["checkpoint"], {
                "solver": "dmft.grokking.solve", **fingerprint(a)}),
            what="dmft.grokking.solve",
            knobs="raise n_samples= (Monte Carlo noise floors the residual near 1/sqrt(M))")
        # draw-major batch -> (alpha, eps, target_scale, P_over_D, mc_seed, time)
        shape = (len(seeds), alphas.size, epss.size, scales.size, lams.size, n)
        stats = {k: np.moveaxis(np.asarray(v, np.float64).reshape(shape), 0, -2)
                 for k, v in stats.items()}
    step_error = float(np.max(np.asarray(dropped)[..., 1]))
    step_tolerance = implicit_step_tolerance(a["dtype"])
    if step_error > step_tolerance:
        warnings.warn(f"dmft.grokking.solve: the implicit steps' Newton solves left a relative "
                      f"error of {step_error:.2g} (> {step_tolerance:g}) in the fields; "
                      f"the grid's steps (largest dt={dt:.4g}) are too long for them: use a "
                      f"finer `times`", ConvergenceWarning, stacklevel=2)
    if np.isnan(residual) or not all(np.all(np.isfinite(v)) for v in stats.values()):
        raise ValueError(f"the iteration diverged (largest step dt={dt!r}): the feature "
                         f"dynamics need dt (4 eps / alpha) |Delta| / (D P_over_D) << 1 in the "
                         f"rich regime (with either scheme); reduce dt")
    spread = check_spread(time, stats, seeds, a["n_samples"])
    batched_lam, batched_seed = np.ndim(P_over_D) > 0, isinstance(a["seed"], list)
    dims = ("alpha", "eps", "target_scale", "P_over_D", "mc_seed", "time")
    stats = {k: v[:, :, :, slice(None) if batched_lam else 0,
                  slice(None) if batched_seed else 0] for k, v in stats.items()}
    dims = tuple(d for d in dims if (d != "P_over_D" or batched_lam)
                 and (d != "mc_seed" or batched_seed))
    coords = {"alpha": alphas, "eps": epss, "target_scale": scales, "time": time,
              "step": ("time", time / a["lr_scale"])}
    if batched_lam:
        coords["P_over_D"] = lams
    if batched_seed:
        coords["mc_seed"] = seeds
    return xr.Dataset(
        {k: (dims, v, {"description": VARIABLES[k]}) for k, v in stats.items()},
        coords=coords,
        attrs={"theory": "DMFT (D, P -> inf, P/D fixed, N -> inf)", "D": a["D"],
               **({} if batched_lam else {"P_over_D": float(lams[0])}),
               "lr_scale": a["lr_scale"], "dt": dt, "scheme": a["scheme"],
               "grid": "uniform" if uniform else "non-uniform", "n_samples": n_samples,
               "n_response": n_response, "response_sampling": a["response_sampling"],
               **({"mc_spread": spread} if batched_seed else {}),
               "dtype": a["dtype"],
               "bulk_rank": rank,
               "bulk_truncation": float(np.max(np.asarray(dropped)[..., 0])),
               "implicit_step_error": step_error,
               "damping": a["damping"], "anderson": a["anderson"], "tol": a["tol"],
               "iterations": iterations, "residual": residual,
               "converged": int(residual <= a["tol"])})
