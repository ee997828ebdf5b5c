"""The grokking DMFT's implicit (backward Euler) field step and non-uniform time grids.

The per-path pieces are checked against brute force (a direct march of the weight process,
forward-mode differentiation of the path); the solver against its explicit scheme: the two are
first-order schemes of the same equations, so they approach each other as the step shrinks, and
the implicit one stays stable past the explicit stability limit."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmft import grokking
from dmft import grokking_paths as paths_
from dmft import grokking_response as response_


def _setup(compiled, n=24, seed=0):
    """Random causal responses, a non-uniform grid and an implicit weight kernel."""
    rng = np.random.default_rng(seed)
    ds = jnp.asarray(rng.uniform(0.05, 0.4, size=n))
    p = {"alpha": 0.5, "eps": 0.2, "lam": 3.0, "ds": ds, "dim": 20, "scale": 1.2,
         "implicit": True}
    lower = jnp.tril(jnp.ones((n, n)))
    response = 0.3 * jnp.asarray(rng.normal(size=(n, n, 2, 2))) * lower[:, :, None, None]
    response = response + jnp.eye(n)[:, :, None, None] * jnp.eye(2)    # R_kk ~ the local 1
    c = paths_.field_weights(p, n)
    kernel = compiled(paths_.weight_kernel, lam=p["lam"], implicit=True)(response, c)
    bulk, initial = compiled(paths_.bulk_kernel, lam=p["lam"])(
        0.05 * jnp.asarray(rng.normal(size=(n, n))) * lower, 2 * ds / p["lam"])
    noise = jnp.asarray(rng.normal(size=(n, n))) / np.sqrt(n)
    factor, _ = compiled(paths_.low_rank_factor, rank=n)(
        jnp.outer(initial, initial) + 0.5 * noise @ noise.T)
    inputs = {"chi": 0.7 * jnp.asarray(rng.normal(size=(12, n, 2))),
              "z": jnp.asarray(rng.normal(size=12)), "kernel": kernel, "bulk": bulk,
              "factor": factor, "a2": jnp.linspace(0.0, 3.0, n)}
    return inputs, p, response, c


def test_implicit_weight_kernel_is_a_backward_euler_march(x64, compiled):
    """H of the implicit scheme reproduces theta_k = theta_{k-1} - c_k [eta_k
    + lam sum_{l<=k} R_kl theta_l] (solved for theta_k at each step) on a non-uniform grid:
    theta_k = -sum_j c_j H_kj eta_j."""
    inputs, p, response, c = _setup(compiled)
    n, lam = response.shape[0], p["lam"]
    force = np.random.default_rng(3).normal(size=(n, 2))
    r, c_np = np.asarray(response), np.asarray(c)
    theta = np.zeros((n, 2))
    previous = np.zeros(2)
    for k in range(n):
        right = previous - c_np[k] * (force[k] + lam * sum(r[k, l] @ theta[l] for l in range(k)))
        theta[k] = np.linalg.solve(np.eye(2) + c_np[k] * lam * r[k, k], right)
        previous = theta[k]
    kernel = np.asarray(inputs["kernel"])
    np.testing.assert_allclose(-np.einsum("kjab,j,jb->ka", kernel, c_np, force), theta,
                               atol=1e-12)
    assert np.abs(kernel[np.arange(n), np.arange(n)]).max() > 0.1     # equal-time blocks


def test_nonuniform_bulk_kernel_and_spike_seed_variance_are_direct_marches(x64):
    """With per-step c_k = 2 ds_k / lam the bulk kernels (G9b) reproduce the explicit march and
    A2 (G7b) the brute-force double sum."""
    n, lam = 20, 2.0
    rng = np.random.default_rng(5)
    ds = rng.uniform(0.05, 0.3, size=n)
    c = 2 * ds / lam
    response = 0.2 * rng.normal(size=(n, n)) * np.tril(np.ones((n, n)))
    bulk, initial = paths_.bulk_kernel(jnp.asarray(response), jnp.asarray(c), lam)
    force, start = rng.normal(size=n), rng.normal()
    theta = [start]
    for k in range(n - 1):
        theta.append(theta[k] - c[k] * (force[k] + lam * sum(response[k, l] * theta[l]
                                                              for l in range(k + 1))))
    np.testing.assert_allclose(np.asarray(initial) * start - np.asarray(bulk) @ (c * force),
                               theta, atol=1e-12)
    xi, rho = rng.normal(size=(n, n)), rng.normal(size=n)
    xi = xi @ xi.T
    p = {"alpha": 0.5, "eps": 0.2}
    weights = np.zeros((n, n))
    for k in range(n):
        for l in range(k):
            weights[k, l] = 2 * 0.2 / 0.5 * ds[l] * np.prod([1 - ds[j] * rho[j]
                                                             for j in range(l + 1, k)])
    expected = np.einsum("kl,lj,kj->k", weights, xi, weights)
    np.testing.assert_allclose(paths_.spike_seed_variance(jnp.asarray(xi), jnp.asarray(rho),
                                                          jnp.asarray(ds), p), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("leaf", [None, 6])
def test_implicit_path_solves_its_step_and_its_response_is_the_derivative(x64, monkeypatch,
                                                                          compiled, leaf):
    """Each implicit step satisfies a_k = rhs_k - c_k H_kk Phi(a_k) (Newton converged to
    1e-12), and the closed-form response, equal-time blocks J (I + c_k H_kk J)^-1 included,
    equals forward-mode differentiation of the path (also with the triangular divisions split
    down to blocks of 6)."""
    if leaf is not None:
        monkeypatch.setattr(response_, "DIVIDE_LEAF", leaf)
    inputs, p, _, c = _setup(compiled)
    phi, delta, nu, a, m, rows = compiled(paths_.paths, p=p)(**inputs)
    kernel = inputs["kernel"]
    n = a.shape[1]
    # the step equation, from the returned fields and forces
    weighted = kernel * c[None, :, None, None]
    rebuilt = inputs["chi"] - jnp.einsum("kjab,mjb->mka", weighted, phi)
    np.testing.assert_allclose(rebuilt, a, atol=1e-12)
    assert np.abs(np.asarray(weighted[np.arange(n), np.arange(n)])).max() > 0.01
    path = 3
    closed, _ = compiled(response_.path_response, p=p)(
        a[path], m[path], delta[path], rows[path], inputs["z"][path], nu, kernel, inputs["bulk"])

    def forces_of(perturbation):
        one = {**inputs, "chi": inputs["chi"][path][None], "z": inputs["z"][path][None]}
        return paths_.paths(**one, p=p, nu_fixed=nu, perturbation=perturbation[None])[0][0]

    brute = jnp.transpose(jax.jit(jax.jacfwd(forces_of))(jnp.zeros((n, 2))), (0, 2, 1, 3))
    np.testing.assert_allclose(closed, brute, atol=1e-10)
    local = compiled(response_.local_jacobian, p=p)(a, m, inputs["z"], nu)[path]
    equal_time = np.einsum("kab,kbc->kac", local, np.linalg.inv(
        np.eye(2) + np.einsum("k,kab,kbc->kac", c, kernel[np.arange(n), np.arange(n)], local)))
    np.testing.assert_allclose(closed[np.arange(n), np.arange(n)], equal_time, atol=1e-12)


_RUN = {"t_max": 240.0, "D": 30, "n_samples": 64, "n_response": 8, "tol": 1e-6,
        "progress": False}


def _l2(solved, reference, var="test_loss"):
    on = solved[var].interp(time=reference.time.values)
    return float(np.linalg.norm(on - reference[var]) / np.linalg.norm(reference[var]))


@pytest.fixture(scope="module")
def fine():
    """The explicit scheme on a fine grid (dt = 1.5, ds = 0.05): the reference."""
    return grokking.solve(2.0, 0.05, 3.0, dt=1.5, **_RUN).isel(alpha=0, eps=0, target_scale=0)


def test_implicit_scheme_converges_to_the_explicit_one_and_is_stable_past_its_limit(fine):
    """At alpha = 2, eps = 0.05, P/D = 3, D = 30 (stability limit dt < 12.1), test loss against
    the explicit scheme at dt = 1.5: the implicit scheme at dt = 4 is within 2% (first order;
    measured 1.1%; the explicit one at dt = 4 is 0.45% off, and the slow
    test_halving_dt_converges_at_first_order halves its dt); the implicit one at dt = 20 (past
    the limit, where the explicit one is refused) stays finite and within 6% (measured 3.6%);
    `adaptive_times` with steps growing from s = 2 (30 points, ds 0.2 -> 0.46; a dt = 4 grid
    has 61) within 2.5% (measured 1.6%)."""
    implicit = grokking.solve(2.0, 0.05, 3.0, dt=4.0, scheme="implicit", **_RUN)
    assert implicit.attrs["scheme"] == "implicit" and implicit.attrs["grid"] == "uniform"
    assert implicit.attrs["implicit_step_error"] < 1e-10
    assert fine.attrs["implicit_step_error"] == 0
    assert _l2(implicit, fine) < 0.02
    with pytest.raises(ValueError, match="stability limit.*scheme='implicit'"):
        grokking.solve(2.0, 0.05, 3.0, dt=20.0, **_RUN)
    coarse = grokking.solve(2.0, 0.05, 3.0, dt=20.0, scheme="implicit", **_RUN)
    assert np.all(np.isfinite(coarse.test_loss)) and _l2(coarse, fine) < 0.06
    assert coarse.attrs["implicit_step_error"] < 1e-10
    times = grokking.adaptive_times(_RUN["t_max"], _RUN["D"], 3.0, 2.0, 0.05, settled=2.0)
    assert np.diff(times)[-3] > 2 * np.diff(times)[0]                  # the steps grow
    adaptive = grokking.solve(2.0, 0.05, 3.0, times=times, scheme="implicit",
                              **{k: v for k, v in _RUN.items() if k != "t_max"})
    assert adaptive.attrs["grid"] == "non-uniform" and adaptive.time.size < implicit.time.size
    np.testing.assert_allclose(adaptive.time.values, times)
    assert _l2(adaptive, fine) < 0.025


def test_a_float32_implicit_solve_does_not_blame_its_rounding_on_the_steps():
    """float32 Newton residuals sit at a few rounding units (3.9e-7 measured at D = 100): no
    'steps too long' warning for them; the float64 bound stays 1e-8."""
    assert grokking.implicit_step_tolerance("float64") == 1e-8
    assert 1e-6 < grokking.implicit_step_tolerance("float32") < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = grokking.solve(2.0, 0.05, 3.0, dt=20.0, scheme="implicit", dtype="float32",
                                **{**_RUN, "tol": 1e-4})
    assert 0 < single.attrs["implicit_step_error"] < grokking.implicit_step_tolerance("float32")


def test_adaptive_times_and_bad_grids_are_refused_naming_the_argument():
    """adaptive_times: from 0 to t_max, fine (half the stability limit) first, steps growing
    by at most 5% up to 0.02 alpha / eps; `times` with dt or t_max, unsorted, not from 0, too
    short, or with an explicit step past the stability limit is refused naming the argument."""
    times = grokking.adaptive_times(30000.0, 100, 4.5, 8.0, 0.02)
    steps = np.diff(times) / 100
    assert times[0] == 0 and times[-1] == pytest.approx(30000.0)
    # exactly t_max, not 1 ulp below (a simulation's last time would interpolate to nan)
    assert grokking.adaptive_times(12 * 20, 20, 3.0, 1.0, 0.1)[-1] == 240.0
    first = grokking.default_dt(30000.0, 100, 4.5) / 100
    assert steps[0] == pytest.approx(first, rel=0.01)
    assert np.all(steps[1:-1] <= 1.05 * steps[:-2] * (1 + 1e-9))
    assert steps.max() == pytest.approx(0.02 * 8.0 / 0.02, rel=1e-6)
    assert times.size < 30000.0 / grokking.default_dt(30000.0, 100, 4.5) / 2
    kwargs = {"D": 30, "n_samples": 16, "n_response": 2, "progress": False}
    with pytest.raises(ValueError, match="either dt=.*or times="):
        grokking.solve(1.0, 0.05, 3.0, dt=1.0, times=[0.0, 1.0, 2.0], **kwargs)
    with pytest.raises(ValueError, match="either t_max=500.*or times="):
        grokking.solve(1.0, 0.05, 3.0, t_max=500.0, times=[0.0, 1.0, 2.0], **kwargs)
    with pytest.raises(ValueError, match="times must have at least 2"):
        grokking.estimate_cost(times=[0.0])
    with pytest.raises(ValueError, match="times must start at 0"):
        grokking.solve(1.0, 0.05, 3.0, times=[1.0, 2.0, 3.0], **kwargs)
    with pytest.raises(ValueError, match="times must start at 0"):
        grokking.solve(1.0, 0.05, 3.0, times=[0.0, 2.0, 1.0], **kwargs)
    with pytest.raises(ValueError, match="times has a step of 20.*scheme='implicit'"):
        grokking.solve(1.0, 0.05, 3.0, times=[0.0, 5.0, 25.0], **kwargs)
    with pytest.raises(ValueError, match="scheme must be one of"):
        grokking.solve(1.0, 0.05, 3.0, scheme="backward", **kwargs)
    with pytest.raises(ValueError, match="growth"):
        grokking.adaptive_times(100.0, 30, 3.0, 1.0, 0.05, growth=0.5)
    with pytest.raises(ValueError, match="settled=-1"):
        grokking.adaptive_times(100.0, 30, 3.0, 1.0, 0.05, settled=-1.0)
    # the linear fit settles later as P/D falls to 1 (its slowest rate 2 (1 - lam^-1/2)^2):
    # the steps stay fine longer, and at P/D <= 1 or eps = 0 they never grow
    from dmft.grokking_cost import linear_fit_settles
    assert linear_fit_settles(5.0) == 10.0 < linear_fit_settles(2.0) < linear_fit_settles(1.5)
    assert linear_fit_settles(1.0) == np.inf
    for lam, eps in ((0.8, 0.05), (5.0, 0.0)):
        steps = np.diff(grokking.adaptive_times(3000.0, 30, lam, 1.0, eps))
        np.testing.assert_allclose(steps[:-2], steps[0])


def test_closed_form_2x2_inverse_equals_numpy(x64):
    """`inverse_2x2` (the implicit steps' Newton solves and equal-time blocks) against
    numpy.linalg.inv on random blocks, to 1e-12 relative."""
    blocks = np.random.default_rng(0).normal(size=(5, 3, 2, 2))
    np.testing.assert_allclose(np.asarray(paths_.inverse_2x2(jnp.asarray(blocks))),
                               np.linalg.inv(blocks), rtol=1e-12, atol=1e-12)
