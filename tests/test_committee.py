"""Saad-Solla ODEs (dmft/committee.py): integrals, symmetries, plateau, agreement with SGD."""

import jax
import numpy as np
import pytest

import lazyrich
from dmft import committee


def _random_covariance(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, n + 2))
    return a @ a.T / (n + 2)


def _gaussian_samples(covariance, count, seed):
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(np.zeros(len(covariance)), covariance, size=count)


def test_closed_form_integrals_equal_monte_carlo(x64):
    """I3 and I4 against 2 million Gaussian samples (4 standard errors), including repeated
    indices."""
    covariance = _random_covariance(4, 0)
    u = _gaussian_samples(covariance, 2_000_000, 1)
    g = jax.scipy.special.erf(u / np.sqrt(2.0))
    dg = np.sqrt(2 / np.pi) * np.exp(-(u**2) / 2)
    i3 = np.asarray(committee.integral_i3(covariance))
    i4 = np.asarray(committee.integral_i4(covariance))
    for a, b, c in [(0, 1, 2), (1, 1, 3), (2, 0, 2), (3, 3, 3)]:
        sample = dg[:, a] * u[:, b] * g[:, c]
        assert abs(sample.mean() - i3[a, b, c]) < 4 * sample.std() / np.sqrt(len(u))
    for a, b, c, d in [(0, 1, 2, 3), (0, 0, 1, 1), (2, 3, 2, 0), (1, 1, 1, 1)]:
        sample = dg[:, a] * dg[:, b] * g[:, c] * g[:, d]
        assert abs(sample.mean() - i4[a, b, c, d]) < 4 * sample.std() / np.sqrt(len(u))


def _symmetric_start(q=0.2, r=0.0, asymmetry=0.0):
    Q = np.array([[q, 0.0], [0.0, q]])
    R = np.array([[r + asymmetry, r], [r, r - asymmetry]])
    return Q, R, np.eye(2)


def test_symmetries_of_the_flow(x64):
    """Q stays symmetric; relabelling the student units relabels the solution."""
    rng = np.random.default_rng(3)
    Q = _random_covariance(3, 4) * 0.3
    R, T = 0.1 * rng.normal(size=(3, 2)), np.eye(2)
    ds = committee.solve(0.4, Q, R, T, t_max=5.0, dt=0.05, log_every=10)
    np.testing.assert_allclose(ds.Q, np.swapaxes(ds.Q.values, -1, -2), atol=1e-13)
    order = [2, 0, 1]
    swapped = committee.solve(0.4, Q[np.ix_(order, order)], R[order], T, t_max=5.0, dt=0.05,
                              log_every=10)
    np.testing.assert_allclose(swapped.Q, ds.Q.values[:, order][:, :, order], rtol=1e-10)
    np.testing.assert_allclose(swapped.R, ds.R.values[:, order], rtol=1e-10)


def test_symmetric_plateau_and_its_escape(x64):
    """K = M = 2, T = I: from an exactly symmetric start the student stays on the symmetric
    subspace (R_i1 = R_i2) and the error settles on the plateau; a 1e-2 asymmetry
    escapes to an error 10x lower, a 1e-4 one later (measured t = 600 and 895: the escape
    time grows like the log of the asymmetry)."""
    settings = dict(t_max=1200.0, dt=0.1, log_every=50)
    stuck = committee.solve(0.5, *_symmetric_start(), **{**settings, "t_max": 400.0})
    # the symmetric fixed point is unstable: rounding errors (1e-16) grow, but stay tiny here
    np.testing.assert_allclose(stuck.R[..., 0], stuck.R[..., 1], atol=1e-6)
    plateau = float(stuck.generalisation_error.isel(time=-1))
    assert float(stuck.generalisation_error.sel(time=slice(100, None)).min()) > 0.99 * plateau
    assert 0.005 < plateau < 0.03
    assert float(stuck.generalisation_error.sel(time=200.0)) == pytest.approx(plateau, rel=5e-3)

    def escape_time(asymmetry):
        error = committee.solve(0.5, *_symmetric_start(asymmetry=asymmetry),
                                **settings).generalisation_error
        below = np.nonzero(error.values < 0.1 * plateau)[0]
        return error.time.values[below[0]] if len(below) else np.inf

    early, late = escape_time(1e-2), escape_time(1e-4)
    assert early < late < np.inf


def test_halving_dt_changes_the_curves_by_less_than_1e_6(x64):
    """Runge-Kutta 4 at dt = 0.1 vs 0.05 (measured difference ~2e-7 relative)."""
    Q, R, T = _symmetric_start(asymmetry=1e-3)
    coarse = committee.solve(0.5, Q, R, T, t_max=20.0, dt=0.1, log_every=10)
    fine = committee.solve(0.5, Q, R, T, t_max=20.0, dt=0.05, log_every=20)
    np.testing.assert_allclose(coarse.generalisation_error, fine.generalisation_error,
                               rtol=1e-6)


def test_online_sgd_approaches_the_ode_as_d_grows(x64):
    """Simulated `teacher` runs (K = M = 2, erf, lr 0.5, 4 seeds) against the ODE started from
    each run's own initial overlaps: the relative L2 error of the seed-averaged error curve over
    t in [0, 40] (through the plateau) falls from D = 100 to D = 400 and is below 1.5% at
    D = 400 (measured: 1.4% and 0.6%; 0.23% at D = 1600)."""
    errors = []
    for dim in (100, 400):
        steps = 40 * dim
        sim = lazyrich.sweep("teacher", seed=[0, 1, 2, 3], D=dim, steps=steps,
                             log_every=steps // 40, lr=0.5, init_scale=0.3, progress=False)
        start = sim.isel(step=0)
        ode = committee.solve(0.5, start.Q.values, start.R.values, sim.T.values, t_max=40.0,
                              dt=0.01, log_every=100, batch_dims=("seed",))
        np.testing.assert_allclose(ode.time, sim.time)
        simulated = sim.generalisation_error.mean("seed").values
        theory = ode.generalisation_error.mean("seed").values
        errors.append(np.linalg.norm(simulated - theory) / np.linalg.norm(theory))
    assert errors[1] < errors[0] and errors[1] < 0.015, errors


def test_batched_learning_rates_and_bad_input(x64):
    Q, R, T = _symmetric_start(asymmetry=1e-2)
    ds = committee.solve([0.1, 0.5], Q, R, T, t_max=1.0, dt=0.1)
    assert ds.generalisation_error.dims == ("lr", "time")
    single = committee.solve(0.5, Q, R, T, t_max=1.0, dt=0.1)
    np.testing.assert_allclose(ds.generalisation_error.sel(lr=0.5), single.generalisation_error)
    for kwargs, match in [({"dt": 0.0}, "dt=0.0"), ({"dt": -1.0}, "dt=-1.0"),
                          ({"t_max": 0.05}, "shorter than dt"),
                          ({"t_max": float("nan")}, "t_max=nan"),
                          ({"output_scale": 0.0}, "output_scale")]:
        with pytest.raises(ValueError, match=match):
            committee.solve(0.5, Q, R, T, **{"t_max": 1.0, "dt": 0.1, **kwargs})
    with pytest.raises(ValueError, match="lr="):
        committee.solve(-0.5, Q, R, T, t_max=1.0, dt=0.1)
    with pytest.raises(ValueError, match="inconsistent overlap shapes"):
        committee.solve(0.5, Q, R[:, :1], T, t_max=1.0, dt=0.1)


def test_progress_counts_every_rk_step_of_every_run(capsys):
    """The bar is fed from inside the compiled integration and ends at runs x steps."""
    import numpy as np

    from dmft import committee

    eye = np.eye(2)
    committee.solve([0.5, 1.0], 0.1 * eye, 0.1 * eye, eye, t_max=1.0, dt=0.01, log_every=10)
    err = capsys.readouterr().err
    assert "200/200" in err and "(2 run(s))" in err
    committee.solve(0.5, 0.1 * eye, 0.1 * eye, eye, t_max=1.0, dt=0.01, progress=False)
    assert capsys.readouterr().err == ""
