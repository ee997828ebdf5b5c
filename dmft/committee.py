"""Saad-Solla order-parameter ODEs for online SGD in soft committee machines (erf units).

Saad & Solla, "On-line learning in soft committee machines", Phys. Rev. E 52, 4225 (1995);
Biehl & Schwarze (1995). A student of M units learns a teacher of K units from a fresh Gaussian
example per step; as D -> infinity the overlaps Q = J J^T / D, R = J B^T / D (and, for a centred
student, C = J J_0^T / D) follow deterministic ODEs in t = steps x batch_size / D. With
g(z) = erf(z / sqrt 2), the readout error signal of unit i is

    delta_i = g'(x_i) sum_c s_c g(u_c),   s = (-1 per student unit, +1 per initial student unit
                                              if centred, +1/alpha per teacher unit),

and, writing u for all fields (x, [x^0], y) with covariance built from Q, C, R, T, Q_0, R_0:

    dR_in/dt = lr E[delta_i y_n]
    dC_ik/dt = lr E[delta_i x^0_k]
    dQ_ik/dt = lr (E[delta_i x_k] + E[delta_k x_i]) + (lr^2 / batch_size) E[delta_i delta_k]

with the Gaussian integrals in closed form (Saad & Solla 1995, eqs. for I_3 and I_4):

    I3(a,b,c) = E[g'(u_a) u_b g(u_c)] = (2/pi) (C_bc (1 + C_aa) - C_ab C_ac)
                                        / ((1 + C_aa) sqrt((1 + C_aa)(1 + C_cc) - C_ac^2))
    I4(a,b,c,d) = E[g'(u_a) g'(u_b) g(u_c) g(u_d)] = (4 / pi^2) arcsin(L0 / sqrt(L1 L2)) / sqrt(L4)

(L0, L1, L2, L4 below). The generalisation error is (1/2) E[(f - f_teacher)^2], a closed form
in the same covariance (`lazyrich.tasks.committee.generalisation_error`). Variable names match
the `teacher` experiment (Q, R, T, generalisation_error). Integration: classical Runge-Kutta 4
with a fixed step dt inside `lax.scan`, float64 when jax_enable_x64 is on; cost O(n^4) per step
for n = 2M + K fields (the I4 tensor), memory O(n^4 + T_logged M^2).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from jax import lax
from tqdm.auto import tqdm

from dmft import checks
from lazyrich.core.checks import check_positive_integer, require_memory
from lazyrich.core.devices import matmul_precision_context
from lazyrich.core.progress import report, reporting
from lazyrich.tasks.committee import generalisation_error


def integral_i3(covariance: jax.Array) -> jax.Array:
    """I3[a, b, c] = E[g'(u_a) u_b g(u_c)] for all index triples; (n, n) -> (n, n, n)."""
    diagonal = jnp.diag(covariance)
    c_aa = diagonal[:, None, None]
    c_ab = covariance[:, :, None]
    c_ac = covariance[:, None, :]
    c_bc = covariance[None, :, :]
    c_cc = diagonal[None, None, :]
    lambda3 = (1.0 + c_aa) * (1.0 + c_cc) - c_ac**2
    return (2.0 / jnp.pi) * (c_bc * (1.0 + c_aa) - c_ab * c_ac) / ((1.0 + c_aa)
                                                                    * jnp.sqrt(lambda3))


def integral_i4(covariance: jax.Array) -> jax.Array:
    """I4[a, b, c, d] = E[g'(u_a) g'(u_b) g(u_c) g(u_d)]; (n, n) -> (n, n, n, n)."""
    d = jnp.diag(covariance)
    c = covariance
    c_aa, c_bb = d[:, None, None, None], d[None, :, None, None]
    c_cc, c_dd = d[None, None, :, None], d[None, None, None, :]
    c_ab = c[:, :, None, None]
    c_ac, c_ad = c[:, None, :, None], c[:, None, None, :]
    c_bc, c_bd = c[None, :, :, None], c[None, :, None, :]
    c_cd = c[None, None, :, :]
    lambda4 = (1.0 + c_aa) * (1.0 + c_bb) - c_ab**2
    lambda0 = (lambda4 * c_cd - c_bc * c_bd * (1.0 + c_aa) - c_ac * c_ad * (1.0 + c_bb)
               + c_ab * c_ac * c_bd + c_ab * c_ad * c_bc)
    lambda1 = (lambda4 * (1.0 + c_cc) - c_bc**2 * (1.0 + c_aa) - c_ac**2 * (1.0 + c_bb)
               + 2.0 * c_ab * c_ac * c_bc)
    lambda2 = (lambda4 * (1.0 + c_dd) - c_bd**2 * (1.0 + c_aa) - c_ad**2 * (1.0 + c_bb)
               + 2.0 * c_ab * c_ad * c_bd)
    ratio = jnp.clip(lambda0 / jnp.sqrt(lambda1 * lambda2), -1.0, 1.0)
    return (4.0 / jnp.pi**2) * jnp.arcsin(ratio) / jnp.sqrt(lambda4)


def _covariance(state: dict, fixed: dict, centred: bool) -> jax.Array:
    """Covariance of the fields (x, [x^0,] y) from the overlaps."""
    if centred:
        rows = [jnp.concatenate([state["Q"], state["C"], state["R"]], axis=1),
                jnp.concatenate([state["C"].T, fixed["Q0"], fixed["R0"]], axis=1),
                jnp.concatenate([state["R"].T, fixed["R0"].T, fixed["T"]], axis=1)]
    else:
        rows = [jnp.concatenate([state["Q"], state["R"]], axis=1),
                jnp.concatenate([state["R"].T, fixed["T"]], axis=1)]
    return jnp.concatenate(rows, axis=0)


def _signs(n_student: int, n_teacher: int, output_scale, centred: bool, dtype) -> jax.Array:
    parts = [-jnp.ones(n_student, dtype)]
    if centred:
        parts.append(jnp.ones(n_student, dtype))
    parts.append(jnp.ones(n_teacher, dtype) / output_scale)
    return jnp.concatenate(parts)


def derivatives(state: dict, fixed: dict, lr, output_scale, centred: bool,
                batch_size: int) -> dict:
    """d/dt of the overlaps (Q, R[, C]) at one time; shapes as in `state`."""
    n_student, n_teacher = state["R"].shape
    covariance = _covariance(state, fixed, centred)
    signs = _signs(n_student, n_teacher, output_scale, centred, covariance.dtype)
    drift = jnp.einsum("abc,c->ab", integral_i3(covariance)[:n_student], signs)
    noise = jnp.einsum("abcd,c,d->ab",
                       integral_i4(covariance)[:n_student, :n_student], signs, signs)
    teacher = slice(covariance.shape[0] - n_teacher, None)
    out = {"Q": lr * (drift[:, :n_student] + drift[:, :n_student].T)
           + lr**2 / batch_size * noise,
           "R": lr * drift[:, teacher]}
    if centred:
        out["C"] = lr * drift[:, n_student:2 * n_student]
    return out


def _error(state: dict, fixed: dict, output_scale, centred: bool) -> jax.Array:
    n_student, n_teacher = state["R"].shape
    covariance = _covariance(state, fixed, centred)
    readouts = -output_scale * _signs(n_student, n_teacher, output_scale, centred,
                                      covariance.dtype)
    return generalisation_error(covariance, readouts, "erf")


def _integrate(Q, R, T, lr, output_scale, *, centred: bool, batch_size: int, dt: float,
               n_log: int, log_every: int):
    """RK4 from (Q, R, T); returns Q, R, error at n_log + 1 times (one run)."""
    state = {"Q": Q, "R": R}
    if centred:
        state["C"] = Q
    fixed = {"T": T, "Q0": Q, "R0": R}

    def rate(s):
        return derivatives(s, fixed, lr, output_scale, centred, batch_size)

    def rk4(s, _):
        def shifted(k, h):
            return jax.tree_util.tree_map(lambda a, b: a + h * b, s, k)
        k1 = rate(s)
        k2 = rate(shifted(k1, dt / 2))
        k3 = rate(shifted(k2, dt / 2))
        k4 = rate(shifted(k3, dt))
        new = jax.tree_util.tree_map(lambda a, b1, b2, b3, b4: a + dt / 6 * (b1 + 2 * b2
                                                                           + 2 * b3 + b4),
                                     s, k1, k2, k3, k4)
        return new, None

    def logged(s):
        return s["Q"], s["R"], _error(s, fixed, output_scale, centred)

    def block(s, _):
        s, _ = lax.scan(rk4, s, None, length=log_every)
        out = logged(s)
        jax.debug.callback(report, log_every, out[2])  # RK steps done, per run
        return s, out

    _, (qs, rs, errors) = lax.scan(block, state, None, length=n_log)
    q0, r0, e0 = logged(state)
    return (jnp.concatenate([q0[None], qs]), jnp.concatenate([r0[None], rs]),
            jnp.concatenate([e0[None], errors]))


def output_bytes(n_runs: int, n_log: int, n_student: int, n_teacher: int, itemsize: int,
                 centred: bool = False) -> float:
    """Peak bytes of `solve`: the logged Q, R and error at n_log + 1 times for each of n_runs
    runs, held three times (the scan's output, the concatenation with t = 0, the host copy),
    and each run's I4 tensor over n = (2 if centred else 1) M + K fields with its temporaries."""
    fields = (2 if centred else 1) * n_student + n_teacher
    logged = (n_log + 1) * (n_student**2 + n_student * n_teacher + 1)
    return float(itemsize) * n_runs * (3.0 * logged + 8.0 * fields**4)


def solve(lr, Q, R, T, *, t_max: float, dt: float = 0.01, log_every: int = 10,
          output_scale: float = 1.0, centred: bool = False, batch_size: int = 1,
          batch_dims: tuple[str, ...] = (), progress: bool = True) -> xr.Dataset:
    """Integrate the order-parameter ODEs from given initial overlaps.

    Args:
        lr: learning rate, scalar or 1-d (a sweep axis `lr`, vmapped).
        Q: (*batch, M, M) initial student-student overlaps; R: (*batch, M, K) student-teacher;
            T: (*batch, K, K) teacher-teacher (fixed). Leading batch dimensions are named by
            `batch_dims` (e.g. ("seed",) when the initial overlaps come from several simulated
            runs) and vmapped.
        t_max: final time, in examples per input dimension (steps x batch_size / D).
        dt: Runge-Kutta step; must divide into t_max.
        log_every: RK steps between logged points.
        output_scale: alpha; centred: integrate the centred student (f - f_0).
        batch_size: examples per SGD step (divides the lr^2 noise term).
        progress: show a bar of RK4 steps (all runs together) with an ETA, fed from inside the
            compiled integration at every logged point.

    Returns:
        Dataset with Q (.., time, student, other_student), R (.., time, student, teacher),
        T (.., teacher, other_teacher), generalisation_error (.., time); dims `lr` (if 1-d),
        then `batch_dims`, then `time` (a coordinate in the simulation's time units).
    """
    dt, t_max = checks.number("dt", dt), checks.number("t_max", t_max)
    checks.number("output_scale", output_scale)
    check_positive_integer("log_every", log_every)
    check_positive_integer("batch_size", batch_size)
    if t_max < dt:
        raise ValueError(f"t_max={t_max!r} is shorter than dt={dt!r}")
    n_steps = round(t_max / dt)
    if abs(n_steps * dt - t_max) > 1e-9 * t_max or n_steps % log_every:
        raise ValueError(f"t_max={t_max!r} must be a multiple of dt x log_every = "
                         f"{dt * log_every!r}")
    lrs = checks.values("lr", lr)
    dtype = jnp.result_type(float)
    Q, R, T = (checks.finite_array(name, a) for name, a in (("Q", Q), ("R", R), ("T", T)))
    n_batch = len(batch_dims)
    if Q.ndim != 2 + n_batch or R.ndim != 2 + n_batch or T.ndim != 2 + n_batch:
        raise ValueError(f"Q, R, T must have {n_batch} leading batch dims ({batch_dims}) "
                         f"then 2 matrix dims; got shapes {Q.shape}, {R.shape}, {T.shape}")
    if Q.shape[-1] != Q.shape[-2] or R.shape[-2] != Q.shape[-1] \
            or T.shape[-2:] != (R.shape[-1],) * 2:
        raise ValueError(f"inconsistent overlap shapes Q {Q.shape}, R {R.shape}, T {T.shape}: "
                         f"need Q (M, M), R (M, K), T (K, K)")
    n_runs = lrs.size * int(np.prod(Q.shape[:-2]))
    n_log = n_steps // log_every
    require_memory(output_bytes(n_runs, n_log, R.shape[-2], R.shape[-1],
                                jnp.dtype(dtype).itemsize, centred),
                   f"dmft.committee.solve logging {n_log + 1} times ({n_steps} RK4 steps of "
                   f"dt={dt:g} to t_max={t_max:g}, every log_every={log_every}) for {n_runs} "
                   f"run(s)", "log less often (raise log_every=), raise dt=, or shorten t_max=")
    Q, R, T = (jnp.asarray(a, dtype) for a in (Q, R, T))

    def one(q, r, t, rate):
        return _integrate(q, r, t, rate, output_scale, centred=centred, batch_size=batch_size,
                          dt=dt, n_log=n_log, log_every=log_every)

    run = one
    for _ in range(n_batch):
        run = jax.vmap(run, in_axes=(0, 0, 0, None))
    run = jax.jit(jax.vmap(run, in_axes=(None, None, None, 0)))
    if not isinstance(progress, bool):
        raise TypeError(f"progress={progress!r} has type {type(progress).__name__}; progress "
                        f"must be True or False")
    with tqdm(total=n_runs * n_steps, unit="step", unit_scale=True, disable=not progress,
              desc=f"dmft.committee.solve ({n_runs} run(s))", dynamic_ncols=True) as bar, \
            reporting(bar.update) if progress else contextlib.nullcontext():
        with matmul_precision_context("float32"):   # not JAX's TF32 default on GPUs
            qs, rs, errors = (np.asarray(a) for a in run(Q, R, T, jnp.asarray(lrs, dtype)))
        bar.n = n_runs * n_steps
        bar.refresh()
    if np.ndim(lr) == 0:
        qs, rs, errors = qs[0], rs[0], errors[0]
        lead = list(batch_dims)
    else:
        lead = ["lr", *batch_dims]
    time = np.arange(n_log + 1) * dt * log_every
    coords = {"time": time}
    if np.ndim(lr) != 0:
        coords["lr"] = lrs
    return xr.Dataset(
        {"Q": ([*lead, "time", "student", "other_student"], qs),
         "R": ([*lead, "time", "student", "teacher"], rs),
         "T": ([*batch_dims, "teacher", "other_teacher"], np.asarray(T)),
         "generalisation_error": ([*lead, "time"], errors)},
        coords=coords,
        attrs={"theory": "Saad-Solla order-parameter ODEs (online SGD, D -> infinity)",
               "dt": dt, "output_scale": output_scale, "centred": int(centred),
               "batch_size": batch_size})
