"""The grokking DMFT (dmft/grokking.py) against closed forms, the lazy theory and simulation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import lazyrich
from dmft import ConvergenceWarning, grokking, kernel
from dmft import grokking_paths as paths_
from dmft import grokking_response as response_
from dmft import grokking_statistics as statistics_
from lazyrich.experiments import grokking as experiment
from lazyrich.tasks.polynomial import quadratic_model_population_loss


def _teacher_scales(seeds, D, P):
    """b = |beta|^2 / D of the simulation's teacher for each seed."""
    params = lazyrich.get_experiment("grokking").defaults(D=D, P=P, N=1, n_test=1,
                                                          dynamics="infinite")
    return [float(np.sum(np.asarray(experiment.init(jax.random.key(s), params)["data"]["beta"],
                                    np.float64) ** 2) / D) for s in seeds]


def _random_path_setup(compiled, n=30, seed=0):
    p = {"alpha": 0.5, "eps": 0.2, "lam": 3.0, "ds": 0.1, "dim": 20, "scale": 1.2}
    rng = np.random.default_rng(seed)
    lower = jnp.tril(jnp.ones((n, n)))
    response = 0.05 * jnp.asarray(rng.normal(size=(n, n, 2, 2))) * lower[:, :, None, None]
    kernel = compiled(paths_.weight_kernel, c=0.2, lam=3.0)(response)
    bulk, initial = compiled(paths_.bulk_kernel, c=0.2, lam=3.0)(
        0.05 * jnp.asarray(rng.normal(size=(n, n))) * lower)
    noise = jnp.asarray(rng.normal(size=(n, n))) / np.sqrt(n)
    factor, _ = compiled(paths_.low_rank_factor, rank=n)(
        jnp.outer(initial, initial) + 0.5 * noise @ noise.T)
    inputs = {"chi": 0.7 * jnp.asarray(rng.normal(size=(20, n, 2))),
              "z": jnp.asarray(rng.normal(size=20)), "kernel": kernel, "bulk": bulk,
              "factor": factor, "a2": jnp.linspace(0.0, 3.0, n)}
    return inputs, p


@pytest.mark.parametrize("leaf", [None, 8])
def test_path_response_equals_forward_mode_derivative(x64, monkeypatch, compiled, leaf):
    """The closed-form response of one path (G5-G8 linearised, the bulk variance's memory of
    earlier residuals included) equals jax.jacfwd of the path; also with the triangular
    divisions split down to blocks of 8 (`divide_lower`, which splits only past 128 points)."""
    if leaf is not None:
        monkeypatch.setattr(response_, "DIVIDE_LEAF", leaf)
    inputs, p = _random_path_setup(compiled)
    march = compiled(paths_.paths, p=p)
    phi, delta, nu, a, m, rows = march(**inputs)
    closed, bulk_response = compiled(response_.path_response, p=p)(
        a[3], m[3], delta[3], rows[3], inputs["z"][3], nu, inputs["kernel"], inputs["bulk"])

    def path(perturbation):
        one = {**inputs, "chi": inputs["chi"][3][None], "z": inputs["z"][3][None]}
        return paths_.paths(**one, p=p, nu_fixed=nu, perturbation=perturbation[None])[0][0]

    n = a.shape[1]
    np.testing.assert_allclose(jax.jit(path)(jnp.zeros((n, 2))), phi[3], atol=1e-13)
    brute = jnp.transpose(jax.jit(jax.jacfwd(path))(jnp.zeros((n, 2))), (0, 2, 1, 3))
    assert np.all(np.isfinite(brute)) and np.abs(m[3]).max() > 1e-2
    np.testing.assert_allclose(closed, brute, atol=1e-12)
    local = compiled(response_.local_jacobian, p=p)(a, m, inputs["z"], nu)[3]
    np.testing.assert_allclose(closed[np.arange(n), np.arange(n)], local, atol=1e-12)
    # the bulk field on the path is L chi_g: its factor is L F
    propagator = bulk_response / (p["eps"] / p["alpha"] * delta[3][:, None])
    np.testing.assert_allclose(propagator @ inputs["factor"], rows[3], atol=1e-12)
    # the solver's fast path: triangular solves with the residuals give the marched factors,
    # and marching with those factors reproduces the paths
    solved = compiled(paths_.bulk_rows, p=p, block=7)(inputs["factor"], inputs["bulk"], delta)
    np.testing.assert_allclose(solved, rows, atol=1e-12)
    again = march(**inputs, rows=solved)
    np.testing.assert_allclose(again[1], delta, atol=1e-12)


@pytest.mark.parametrize("implicit", [False, True])
def test_blocked_march_and_bulk_solves_do_not_depend_on_the_block(x64, compiled, implicit):
    """The march and the bulk solves split time into blocks (the earlier blocks' share of the
    memory sums is one matrix product): blocks of 1 (a plain step-by-step march), 7 (30 points:
    the last block padded) and 30 give the same paths to 1e-12, with the bulk marched causally
    or given, and the bulk factors equal per-path dense solves (blocks of 1, 7 and 64 > n)."""
    inputs, p = _random_path_setup(compiled)
    p = {**p, "implicit": implicit}
    marched = [compiled(paths_.paths, p=p, block=b)(**inputs) for b in (1, 7, 30)]
    for other in marched[1:]:
        for reference, value in zip(marched[0], other, strict=True):
            np.testing.assert_allclose(value, reference, atol=1e-12)
    delta, rows = marched[0][1], marched[0][5]
    n = delta.shape[1]
    c_bulk = 2 * p["ds"] / p["lam"] * p["eps"] / p["alpha"]
    dense = np.stack([np.linalg.solve(np.eye(n) + c_bulk * np.asarray(inputs["bulk"]) * d[None],
                                      np.asarray(inputs["factor"])) for d in np.asarray(delta)])
    np.testing.assert_allclose(rows, dense, atol=1e-12)
    for b in (1, 7, 64):                                  # 64 > n: one block, as 30 above
        solved = compiled(paths_.bulk_rows, p=p, block=b)(inputs["factor"], inputs["bulk"],
                                                           delta)
        np.testing.assert_allclose(solved, dense, atol=1e-12)
        given = compiled(paths_.paths, p=p, block=b)(**inputs, rows=solved)
        for reference, value in zip(marched[0][:5], given[:5], strict=True):
            np.testing.assert_allclose(value, reference, atol=1e-12)


def test_bulk_kernels_equal_a_direct_march(x64):
    """H_g and A (G9b) reproduce theta_{k+1} = theta_k - c [eta_k + lam sum R theta] for a
    random force and start; A2 (G7b) equals a brute-force double sum."""
    n, c, lam = 25, 0.3, 2.0
    rng = np.random.default_rng(2)
    response = 0.2 * rng.normal(size=(n, n)) * np.tril(np.ones((n, n)))
    bulk, initial = paths_.bulk_kernel(jnp.asarray(response), c, lam)
    force, start = rng.normal(size=n), rng.normal()
    theta = [start]
    for k in range(n - 1):
        theta.append(theta[k] - c * (force[k] + lam * sum(response[k, l] * theta[l]
                                                           for l in range(k + 1))))
    np.testing.assert_allclose(np.asarray(initial) * start - c * np.asarray(bulk) @ force,
                               theta, atol=1e-12)
    xi, rho, ds = rng.normal(size=(n, n)), rng.normal(size=n), 0.1
    xi = xi @ xi.T
    p = {"alpha": 0.5, "eps": 0.2}
    weights = np.zeros((n, n))
    for k in range(n):
        for l in range(k):
            weights[k, l] = np.prod([1 - ds * rho[j] for j in range(l + 1, k)])
    expected = (2 * 0.2 / 0.5 * ds) ** 2 * np.einsum("kl,lj,kj->k", weights, xi, weights)
    np.testing.assert_allclose(paths_.spike_seed_variance(jnp.asarray(xi), jnp.asarray(rho),
                                                          ds, p), expected, rtol=1e-12)


def test_statistics_equal_the_engine_population_loss(x64):
    """G11-G12 from the order parameters equal the exact population loss and statistics of an
    explicit (u, v, bulk) quadratic model at large D (lazyrich's closed form)."""
    D, alpha, eps, b = 1500, 0.7, 0.4, 1.3
    rng = np.random.default_rng(1)
    beta_hat = np.eye(D)[0]
    u, w = rng.normal(size=D) * 0.8, rng.normal(size=D) * 0.5
    u[0], w[0] = 0.0, 0.0
    nu, bulk, a2 = 0.9, 1.15, 40.0
    v = np.sqrt(D) * nu * beta_hat + w
    perp = np.eye(D) - np.outer(beta_hat, beta_hat)
    # bulk columns: isotropic variance `bulk` off beta_hat plus their spike seed a2 along it
    Q = eps / (2 * alpha) * np.outer(u, u) + alpha * eps / 2 * (
        np.outer(v, v) - np.outer(beta_hat, beta_hat) + (bulk - 1) * perp
        + a2 * np.outer(beta_hat, beta_hat))
    beta = np.sqrt(b * D) * beta_hat
    theta = np.array([[u @ u, u @ w], [u @ w, w @ w]]) / D
    out = {"delta": jnp.zeros((1, 1)), "nu": jnp.array([nu]), "bulk": jnp.array([bulk]),
           "a2": jnp.array([a2]), "theta": jnp.asarray(theta)[None]}
    stats = statistics_.statistics(out, alpha, eps, D, b)
    exact = quadratic_model_population_loss(jnp.asarray(u), jnp.asarray(Q), jnp.asarray(beta),
                                            (0.0, 0.0, 1.0))
    # G11 drops the O(1/D) fluctuations of x_perp^T (Cov_perp - I) x_perp / D
    assert float(stats["test_loss"][0]) == pytest.approx(float(exact), rel=2e-3)
    assert float(stats["beta_M_beta"][0]) == pytest.approx(beta @ Q @ beta / D**2, rel=1e-9)
    assert float(stats["trace_M"][0]) == pytest.approx(np.trace(Q) / D, rel=1e-9)
    assert float(stats["frob_M"][0]) == pytest.approx(np.linalg.norm(Q) / D, rel=1e-9)


def _marchenko_pastur_curves(s, lam, second_moment, ds):
    """Linear regression on pure noise by Euler steps ds of gradient flow (time s), over the
    Marchenko-Pastur spectrum (closed form): mode x decays as (1 - 2 x ds)^(s / ds)."""
    gamma = 1 / lam
    lo, hi = (1 - gamma**0.5) ** 2, (1 + gamma**0.5) ** 2

    def density(x):
        return np.sqrt((hi - x) * (x - lo)) / (2 * np.pi * gamma * x)

    u2 = second_moment / lam * integrate.quad(
        lambda x: density(x) * (1 - (1 - 2 * x * ds) ** (s / ds)) ** 2 / x, lo, hi)[0]
    train = second_moment * (1 - gamma + gamma * integrate.quad(
        lambda x: density(x) * (1 - 2 * x * ds) ** (2 * s / ds), lo, hi)[0])
    return train, second_moment + u2, u2


def test_linear_features_give_linear_regression():
    """eps = 0: the DMFT is Euler-stepped gradient flow of linear regression of y (second moment
    3 b^2, no linear part) on x: Marchenko-Pastur closed forms. Monte Carlo with M = 2000 paths
    scatters by ~2.5% (sd over seeds), so 7% bounds the fields and 2% the test loss; a factor
    2 anywhere in G6/G9/G10 moves v_norm2 by > 30%."""
    lam, D, b, dt = 4.0, 100, 1.1, 20.0
    ds = grokking.solve(1.0, 0.0, lam, t_max=500, dt=dt, D=D, target_scale=b, n_samples=2000,
                        n_response=2, tol=1e-8, progress=False).isel(alpha=0, eps=0,
                                                                     target_scale=0)
    assert ds.attrs["converged"]
    for t in (100.0, 200.0, 500.0):
        train, test, u2 = _marchenko_pastur_curves(t / D, lam, 3 * b**2, dt / D)
        point = ds.sel(time=t)
        assert float(point.v_norm2) == pytest.approx(u2, rel=0.07)
        assert float(point.test_loss) == pytest.approx(test, rel=0.02)
        assert float(point.train_loss) == pytest.approx(train, rel=0.07)
    assert float(ds.test_loss[0]) == pytest.approx(3 * b**2, rel=1e-12)
    assert float(ds.beta_M_beta.max()) == 0.0


def test_bad_input_is_refused():
    good = {"alpha": 1.0, "eps": 0.1, "P_over_D": 3.0, "t_max": 100.0, "dt": 5.0, "D": 20}
    for change, message in (({"P_over_D": -1.0}, "P_over_D"), ({"dt": 0.0}, "dt"),
                            ({"t_max": 4.0}, "t_max"), ({"alpha": np.nan}, "alpha"),
                            ({"eps": [0.1, np.inf]}, "eps"), ({"D": 1}, "D"),
                            ({"dt": 1e3, "t_max": 1e4}, "stability"),
                            ({"n_samples": 4}, "n_samples"), ({"bulk_rank": 0}, "bulk_rank")):
        with pytest.raises(ValueError, match=message):
            grokking.solve(**{**good, **change})


@pytest.mark.slow
def test_large_alpha_is_the_lazy_kernel_theory():
    """alpha = 1000: the DMFT test loss follows kernel gradient descent with the infinite-width
    NTK (dmft/kernel.py) on the simulation's data (D = 200, P = 800, 20000 test points), averaged
    over 4 seeds with the DMFT's target scale matched per seed: relative L2 error over the run
    below 3.5% (the finite test set alone scatters the kernel curve by ~1.2%); eps = 0 (no
    quadratic features) is further from it."""
    seeds, D, P, lr_scale = [0, 1, 2, 3], 200, 800, 4.0
    lazy = kernel.grokking_lazy_curves(seed=seeds, D=D, N="infinite", P=P, n_test=20_000,
                                       eps=0.1, lr_scale=lr_scale, steps=500, log_every=25)
    scales = _teacher_scales(seeds, D, P)
    theory = grokking.solve(1000.0, [0.1, 0.0], P / D, lr_scale, t_max=2000, dt=25, D=D,
                            target_scale=scales, n_samples=2000, n_response=2, tol=1e-6)
    curves = theory.test_loss.isel(alpha=0).mean("target_scale").interp(time=lazy.time.values)
    expected = lazy.test_loss.mean("seed").values
    errors = [np.linalg.norm(curves.sel(eps=e).values - expected) / np.linalg.norm(expected)
              for e in (0.1, 0.0)]
    assert errors[0] < 0.035 and errors[1] > errors[0]


def test_fixed_point_iteration_converges():
    """The damped fixed-point iteration contracts: the relative change of the curves falls with
    the number of iterations, below 1e-8 within 60 (alpha = 1, eps = 0.1, D = 30: the spike
    grows within the run)."""
    kwargs = {"t_max": 300.0, "dt": 5.0, "D": 30, "n_samples": 200, "n_response": 4,
              "tol": 0.0, "progress": False}
    with pytest.warns(ConvergenceWarning, match="max_iter="):    # tol = 0 is never reached
        residuals = [grokking.solve(1.0, 0.1, 3.0, max_iter=k, **kwargs).attrs["residual"]
                     for k in (3, 10, 60)]
    assert residuals[0] > residuals[1] > residuals[2] and residuals[2] < 1e-8


def _grokking_time(time, curve):
    """First time after the plateau maximum at which the test loss is half that maximum."""
    top = int(np.argmax(curve))
    half = curve[top] / 2
    k = top + int(np.argmax(curve[top:] <= half))
    return time[k - 1] + (half - curve[k - 1]) * (time[k] - time[k - 1]) / (curve[k] - curve[k - 1])


def _agreement(D, seeds, n_samples=1500):
    """(relative L2 error of the seed-mean population test loss, grokking times) for the
    N -> infinity simulation at D, P = 5 D (alpha = 1, eps = 0.02, time 0..80 D)."""
    lr_scale = D / 20
    sim = lazyrich.sweep("grokking", alpha=1.0, eps=0.02, D=D, P=5 * D, N=1, n_test=10,
                         lr_scale=lr_scale, steps=1600, log_every=int(400 / lr_scale),
                         dynamics="infinite", seed=seeds, progress=False)
    theory = grokking.solve(1.0, 0.02, 5.0, lr_scale, t_max=80.0 * D, dt=0.25 * D, D=D,
                            target_scale=_teacher_scales(seeds, D, 5 * D),
                            n_samples=n_samples, n_response=16, tol=1e-5)
    time = sim.time.values
    simulated = sim.test_loss_population.mean("seed").values
    predicted = theory.test_loss.isel(alpha=0, eps=0).mean("target_scale").interp(
        time=time).values
    error = np.linalg.norm(predicted - simulated) / np.linalg.norm(simulated)
    return error, _grokking_time(time, simulated), _grokking_time(time, predicted)


@pytest.mark.slow
def test_simulation_approaches_the_dmft_as_D_grows():
    """N -> infinity simulations (teacher scale matched per seed) at D = 50 (8 seeds), 100 (4)
    and 200 (8): the relative L2 error of the test-loss curve over the run falls with D and is
    below 5% at D = 200 (measured 19.0%, 8.9%, 4.9%), and the grokking time agrees within 10%
    at D = 200 (measured -21%, -5.6%, +2.2%). About 40 min on 2 CPU cores."""
    results = {D: _agreement(D, list(range(seeds))) for D, seeds in ((50, 8), (100, 4),
                                                                       (200, 8))}
    errors = [results[D][0] for D in (50, 100, 200)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.05
    _, simulated, predicted = results[200]
    assert abs(predicted - simulated) / simulated < 0.10


@pytest.mark.slow
def test_halving_dt_converges_at_first_order():
    """Euler in time: halving dt (6 -> 3 -> 1.5, D = 30, alpha = 1, eps = 0.1, the spike grows
    within the run) changes the curves by less than 2% and then by about half as much (measured
    1.5% then 0.7% for the test loss). About 16 s."""
    kwargs = {"t_max": 300.0, "D": 30, "n_samples": 400, "n_response": 32, "tol": 1e-7}
    solved = [grokking.solve(1.0, 0.1, 3.0, dt=dt, **kwargs).isel(alpha=0, eps=0,
                                                                 target_scale=0)
              for dt in (6.0, 3.0, 1.5)]
    time = solved[0].time.values
    for var in ("test_loss", "train_loss", "beta_M_beta"):
        curves = [s[var].interp(time=time).values for s in solved]
        changes = [np.abs(curves[i] - curves[i + 1]).max() / np.abs(curves[i + 1]).max()
                   for i in (0, 1)]
        assert changes[0] < 0.025 and changes[1] < 0.6 * changes[0]


@functools.partial(jax.jit, static_argnames=("lam", "ds"))
def _frozen_bulk_iteration(response, noise, delta, rate, noise_factor, lam, ds):
    """One fixed-point step of the bulk (G6b, G9b, G10b) for frozen residuals delta (M, n):
    compiled once for every rate and noise factor."""
    M, n = delta.shape
    c, eye = 2 * ds / lam, jnp.eye(n)
    p = {"ds": ds, "lam": lam, "eps": rate, "alpha": 1.0}
    bulk, initial = paths_.bulk_kernel(response, c, lam)
    covariance = jnp.outer(initial, initial) + noise_factor * c**2 * lam * bulk @ noise @ bulk.T
    factor, _ = paths_.low_rank_factor(covariance, n)
    rows = paths_.bulk_rows(factor, bulk, delta, p)
    propagators = jax.vmap(lambda d: jax.scipy.linalg.solve_triangular(
        eye + c * rate * bulk * d[None, :], eye, lower=True))(delta)
    response = rate * jnp.mean(delta[:, :, None] * propagators, axis=0)
    weighted = delta[:, :, None] * rows
    noise = rate**2 * jnp.einsum("mkr,mjr->kj", weighted, weighted) / M
    return response, noise, covariance


def _frozen_bulk_variance(rate, lam=3.0, ds=0.1, n=24, noise_factor=1.0):
    """(exact, DMFT) tr(U U^T)/D over the bulk for frozen residuals Delta = 0.5 - 1.5 z^2:
    exact U_k = (I - ds 2 rate D G)^k at D = 600, DMFT from G6b, G9b, G10b."""
    rng = np.random.default_rng(0)

    def residual(z):
        return 0.5 - 1.5 * z**2

    D = 600
    X = rng.normal(size=(int(lam * D), D))
    G = X.T @ (residual(X[:, 0])[:, None] * X) / (X.shape[0] * D)
    step, U, exact = np.eye(D) - ds * 2 * rate * D * G, np.eye(D), []
    for _ in range(n):
        exact.append(np.sum(U[:, 1:] ** 2) / (D - 1))
        U = step @ U
    M = 3000
    delta = jnp.broadcast_to(residual(jnp.asarray(rng.normal(size=M)))[:, None], (M, n))
    response, noise = jnp.zeros((n, n)), jnp.zeros((n, n))
    for _ in range(25):
        response, noise, covariance = _frozen_bulk_iteration(
            response, noise, delta, rate, noise_factor, lam=lam, ds=ds)
    return np.asarray(exact), np.diag(np.asarray(covariance))


def test_bulk_columns_follow_the_exact_linear_dynamics(x64):
    """With the residuals frozen, the bulk columns obey U' = -(2 eps / alpha) G U exactly: the
    DMFT's C_g(s, s) (G6b, G9b, G10b) equals tr(U U^T) / D of the explicit product at D = 600,
    shrinking and growing, within 1.5% (Monte Carlo, M = 3000, and O(1/sqrt D)); dropping half
    of the noise term C_Phi^g misses by more."""
    for rate in (-0.05, 0.05):
        exact, dmft = _frozen_bulk_variance(rate)
        np.testing.assert_allclose(dmft, exact, rtol=0.015)
    exact, halved = _frozen_bulk_variance(0.05, noise_factor=0.5)
    assert np.max(np.abs(halved / exact - 1)) > 0.03
