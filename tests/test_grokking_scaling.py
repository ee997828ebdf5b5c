"""dmft.grokking_scaling (closed form of the plateau, the grokking time, the train half time
and the delay, S1-S14 of dmft/README.md) and dmft.grokking_bulk against independent
computations: numpy eigen-decompositions of the weighted input covariance, and the
N -> infinity simulation `lazyrich.sweep(dynamics="infinite")`."""

import jax
import numpy as np
import pytest

import lazyrich
from dmft import grokking_bulk as gb
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


def _weighted_covariance(D: int, lam: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One draw: residual weights w (P,) of the linear fit of y = x_0^2 (b = 1), eigenvalues
    (D - 1,) of the bulk B = (1/P) sum w x_perp x_perp^T and xhat_perp's squared projections
    on its eigenvectors (P, D - 1)."""
    X = rng.standard_normal((lam * D, D))
    y = X[:, 0] ** 2
    w = y - X @ np.linalg.solve(X.T @ X, X.T @ y)
    perp = X[:, 1:]
    values, vectors = np.linalg.eigh((perp.T * w) @ perp / (lam * D))
    unit = perp / np.linalg.norm(perp, axis=1, keepdims=True)
    return w, values, (unit @ vectors) ** 2


def test_bulk_growth_matches_the_eigendecomposition():
    """S10-S11: xhat^T e^{sB} xhat of the training points at s = 1 (D = 300, P = 8 D, 2 draws):
    its mean within 6% and its mean over the top decile of residual weights within 8% of the
    closed form (measured 2-5%; finite-D fluctuations of the edge)."""
    from threadpoolctl import threadpool_limits

    D, lam, s = 300, 8, 1.0
    growth = gb.BulkGrowth(lam, lam * D)
    h = growth(np.array([s]))[:, 0]
    order = np.argsort(growth.tau)
    top = order[np.cumsum(growth.probability[order]) > 0.9]
    theory_top = growth.probability[top] @ h[top] / growth.probability[top].sum()
    rng = np.random.default_rng(1)
    with threadpool_limits(1):
        draws = [_weighted_covariance(D, lam, rng) for _ in range(2)]
    means = [np.mean(proj @ np.exp(s * values)) for _, values, proj in draws]
    tops = [np.mean((proj @ np.exp(s * values))[w > np.quantile(w, 0.9)])
            for w, values, proj in draws]
    assert np.mean(means) == pytest.approx(growth.probability @ h, rel=0.06)
    assert np.mean(tops) == pytest.approx(theory_top, rel=0.08)
    assert growth(np.zeros(1))[:, 0] == pytest.approx(np.ones(len(h)), abs=1e-8)


def test_compressed_weight_atoms_equal_one_atom_per_point(monkeypatch):
    """The 64 + 256-bin quantile atoms give the train half time of P exact quantiles to 1e-4."""
    alpha = np.array([0.25, 1.0, 4.0])
    compressed = gs.train_half_time(alpha, 0.05, 5, 200)
    monkeypatch.setattr(gb, "BODY_BINS", 10**6)
    assert gs.train_half_time(alpha, 0.05, 5, 200) == pytest.approx(compressed, rel=1e-4)


def test_train_half_matches_the_frozen_bulk_random_matrix():
    """S12-S13 without the spike's share: the rescaled train half time s* of the clipped
    frozen-bulk model from the closed form against the same model evaluated with numpy eigh
    (D = 200, P = 5 D, mean of 3 draws), for four amplitudes alpha eps / 2: within 5%
    (measured 1%, draw-to-draw spread 3%)."""
    from threadpoolctl import threadpool_limits

    D, lam = 200, 5
    amplitude = np.array([0.025, 0.04, 0.0125, 0.005])
    growth = gb.BulkGrowth(lam, lam * D)
    theory = gs._bisect_half(lambda s: gs._train_loss(growth, s, amplitude, D, 0.0, 0.0),
                             0.5 * float(growth.probability @ growth.z2**2), len(amplitude))
    rng = np.random.default_rng(0)
    brute = []
    with threadpool_limits(1):
        for _ in range(3):
            w, values, proj = _weighted_covariance(D, lam, rng)

            def loss(s, w=w, values=values, proj=proj):
                prediction = amplitude * (proj @ np.exp(np.outer(values, s)) - 1.0)
                fitted = np.minimum(prediction, np.maximum(w, 0.0)[:, None])
                return np.mean((w[:, None] - fitted) ** 2, axis=0)

            brute.append(gs._bisect_half(loss, 1.5, len(amplitude)))  # half of E y^2 = 3
    assert theory == pytest.approx(np.mean(brute, axis=0), rel=0.05)


def test_train_half_and_delay_against_simulation_at_small_D(small_run):
    """S13-S14 against the seed-mean simulated train half time: within a factor 1.4 at these
    small sizes (measured 1.29 at D = 24, 1.20 at D = 32, the closed form early); the delay is
    grokking_time - train_half_time and positive."""
    t_theory, ds = small_run
    D = int(ds.attrs["D"])
    t_train = float(gs.train_half_time(1.0, 0.05, 8, D))
    t_sim = float(half_time(ds.train_loss, floor=0.0).mean())
    assert 1 / 1.4 < t_sim / t_train < 1.4
    assert float(gs.delay(1.0, 0.05, 8, D)) == pytest.approx(t_theory - t_train)
    assert 0 < t_theory - t_train < t_theory


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="P_over_D"):
        gs.grokking_time(1.0, 0.02, 0.5, 100)
    with pytest.raises(ValueError, match="alpha"):
        gs.grokking_time(-1.0, 0.02, 5, 100)
    with pytest.raises(ValueError, match="too large"):
        gs.grokking_time(1e4, 1.0, 5, 10)
    with pytest.raises(ValueError, match="P_over_D"):
        gs.train_half_time(1.0, 0.02, 1.0, 100)
    # P/D <= 2: the linear fit alone halves the train loss, no bulk-set half time
    assert np.all(np.isnan(gs.train_half_time(1.0, 0.02, [1.05, 2.0], 100)))
    assert np.isfinite(gs.train_half_time(1.0, 0.02, 2.5, 100))
    with pytest.raises(ValueError, match="eps"):
        gs.delay(1.0, float("nan"), 5, 100)


@pytest.mark.slow
def test_error_table_over_the_issue_grid():
    """The issue-15 grid at D = 100 and 200 (alpha 2^-3..2^3, eps 0.02/0.05/0.1, P/D 2/3/5/8,
    6 seeds: 1,008 runs of 20,000 steps; ~150 s on one H200 GPU, hours on 2 CPU cores): prints
    closed form / seed-median simulated half time - 1 (dmft/README.md quotes it) and asserts
    what was measured: within 10% at P/D = 8, eps = 0.02, and the error grows as P/D falls
    from 8 to 5 to 3 (the bulk fits the training set first); the train half time (S13) within
    10% at eps = 0.02, P/D = 5 and 8."""
    from dmft.grokking_grid import (
        GRID,
        format_errors,
        relative_errors,
        simulate_grid,
        train_and_delay_errors,
    )

    jax.config.update("jax_enable_x64", True)
    errors, train = {}, {}
    for D in (100, 200):
        for lam in GRID["P_over_D"]:
            runs = simulate_grid(D, lam, range(6))
            errors[D, lam], grokked = relative_errors(runs, D, lam)
            train[D, lam], delay, _ = train_and_delay_errors(runs, D, lam)
            print(f"D={D} P/D={lam}: closed form / simulation - 1 in %, alpha = 2^-3 .. 2^3")
            print(format_errors(errors[D, lam], grokked))
            print("  train half time (S13), then delay (S14) error / grokking time, in %")
            print(format_errors(train[D, lam], grokked))
            print(format_errors(delay, grokked))
    for D in (100, 200):
        assert np.all(np.abs(errors[D, 8][:, 0]) < 0.10)
        # S13 measured -8 .. +5% at eps = 0.02, P/D = 5 and 8
        assert np.all(np.abs(train[D, 8][:, 0]) < 0.10)
        assert np.all(np.abs(train[D, 5][:, 0]) < 0.10)
        mean_error = [np.nanmean(np.abs(errors[D, lam])) for lam in (8, 5, 3)]
        assert mean_error[0] < mean_error[1] < mean_error[2]
