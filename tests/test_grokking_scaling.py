"""dmft.grokking_scaling (closed form of the plateau and the grokking time, S1-S8 of
dmft/README.md) against independent computations: numpy eigen-decomposition of the weighted
input covariance, and the N -> infinity simulation `lazyrich.sweep(dynamics="infinite")`."""

import jax
import numpy as np
import pytest

import lazyrich
from dmft import grokking_scaling as gs
from lazyrich.measures.grokking_times import half_time


def test_outlier_and_overlap_match_the_weighted_covariance_at_large_D():
    """S4-S6: the top eigenvalue of (1/P) sum_mu (b z^2 - yhat) x x^T (times D / b) and its
    eigenvector's squared overlap with beta_hat, at D = 300, P = 8 D, averaged over 2 draws,
    within 8% / 25% (finite-D fluctuations of the overlap are larger)."""
    from threadpoolctl import threadpool_limits

    D, lam = 300, 8
    rng = np.random.default_rng(1)
    tops, overlaps = [], []
    # one BLAS thread: these 300 x 300 products take ~0.1 s, but oversubscribed threads on a
    # loaded 2-core machine took 10-20 s
    with threadpool_limits(1):
        for _ in range(2):
            X = rng.standard_normal((lam * D, D))
            y = X[:, 0] ** 2                       # b = 1, beta_hat = e_1
            yhat = X @ np.linalg.solve(X.T @ X, X.T @ y)
            A = (X.T * (y - yhat)) @ X / (lam * D)
            values, vectors = np.linalg.eigh(A)
            tops.append(values[-1])
            overlaps.append(vectors[0, -1] ** 2)
    x, overlap = gs.spike_outlier(lam)
    assert np.mean(tops) == pytest.approx(float(x), rel=0.08)
    assert np.mean(overlaps) == pytest.approx(float(overlap), rel=0.25)


def test_spike_rate_is_the_stated_closed_form():
    """S3: rate = 4 eps b x / (alpha D); doubling alpha halves it, the time is ~ alpha D / eps."""
    r1 = gs.spike_rate(1.0, 0.02, 5, 100)
    assert gs.spike_rate(2.0, 0.02, 5, 100) == pytest.approx(r1 / 2)
    x, _ = gs.spike_outlier(5)
    assert r1 == pytest.approx(4 * 0.02 * x / 100)


@pytest.fixture(scope="module", params=[24, 32])
def small_run(request):
    """N -> infinity runs (3 seeds) at D = 24 or 32, P = 8 D, alpha = 1, eps = 0.05."""
    D = request.param
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        t_theory = float(gs.grokking_time(1.0, 0.05, 8, D))
        lr = D / 40
        steps = int(np.ceil(2.5 * t_theory / lr / 20) * 20)
        return t_theory, lazyrich.sweep(
            "grokking", dynamics="infinite", seed=range(3), alpha=1.0, eps=0.05, D=D, N=1,
            P=8 * D, n_test=10, lr_scale=lr, steps=steps, log_every=20, progress=False)
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_grokking_time_against_simulation_at_small_D(small_run):
    """S7 against the seed-mean half time of the simulated population test loss: within a
    factor 1.6 at these small sizes (measured 1.45 at D = 24, 1.3 at D = 32); a formula a
    factor 2 off (the old (alpha D / 12 eps) log D) fails."""
    t_theory, ds = small_run
    t_sim = float(half_time(ds.test_loss_population, floor=0.0).mean())
    assert 1 / 1.6 < t_sim / t_theory < 1.6


def test_plateau_against_simulation_at_small_D(small_run):
    """S2: the plateau maximum of the simulated test loss over 3 b^2 lam / (lam - 1), with each
    seed's own b = |beta|^2 / D (the initial population loss is exactly 3 b^2): within 15%."""
    _, ds = small_run
    b = np.sqrt(ds.test_loss_population.isel(step=0).values / 3)
    ratio = ds.test_loss_population.max("step").values / gs.plateau_test_loss(8, b)
    assert np.mean(ratio) == pytest.approx(1.0, abs=0.15)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="P_over_D"):
        gs.grokking_time(1.0, 0.02, 0.5, 100)
    with pytest.raises(ValueError, match="alpha"):
        gs.grokking_time(-1.0, 0.02, 5, 100)
    with pytest.raises(ValueError, match="too large"):
        gs.grokking_time(1e4, 1.0, 5, 10)


@pytest.mark.slow
def test_error_table_over_the_issue_grid():
    """The issue-15 grid at D = 100 and 200 (alpha 2^-3..2^3, eps 0.02/0.05/0.1, P/D 2/3/5/8,
    6 seeds: 1,008 runs of 20,000 steps; ~150 s on one H200 GPU, hours on 2 CPU cores): prints
    closed form / seed-median simulated half time - 1 (dmft/README.md quotes it) and asserts
    what was measured: within 10% at P/D = 8, eps = 0.02, and the error grows as P/D falls
    from 8 to 5 to 3 (the bulk fits the training set first)."""
    from dmft.grokking_grid import GRID, format_errors, relative_errors, simulate_grid

    jax.config.update("jax_enable_x64", True)
    errors = {}
    for D in (100, 200):
        for lam in GRID["P_over_D"]:
            errors[D, lam], grokked = relative_errors(simulate_grid(D, lam, range(6)), D, lam)
            print(f"D={D} P/D={lam}: closed form / simulation - 1 in %, alpha = 2^-3 .. 2^3")
            print(format_errors(errors[D, lam], grokked))
    for D in (100, 200):
        assert np.all(np.abs(errors[D, 8][:, 0]) < 0.10)
        mean_error = [np.nanmean(np.abs(errors[D, lam])) for lam in (8, 5, 3)]
        assert mean_error[0] < mean_error[1] < mean_error[2]
