"""The bulk's test-point fluctuation (`dmft.grokking_outliers`) against brute force."""

import jax.numpy as jnp
import numpy as np
import pytest

from dmft.grokking_outliers import bulk_fluctuation, measure


def test_bulk_fluctuation_is_the_variance_over_test_points_of_the_bulk_share():
    """F = Var_x[(alpha eps / 2) x^T B x / D] with B the covariance change outside beta_hat, the
    linear part and the spike column: against 100,000 Gaussian test points in float64 numpy
    (3%; the function runs in JAX's default float32), and the spike and linear directions add
    nothing."""
    rng = np.random.default_rng(0)
    dim, alpha, eps = 12, 0.5, 0.2
    beta, dm = rng.normal(size=dim), rng.normal(size=dim)
    root = rng.normal(size=(dim, dim)) * np.linspace(0.2, 3.0, dim)
    change = root @ root.T
    spike = beta / np.linalg.norm(beta)
    kept = np.linalg.qr(np.stack([spike, dm, change @ spike], axis=1))[0]
    linear = kept[:, 1]
    keep = np.eye(dim) - kept @ kept.T
    bulk = keep @ change @ keep
    deviation = {"dm": jnp.asarray(dm), "dS": jnp.asarray(change + np.outer(dm, dm))}
    out = bulk_fluctuation(deviation, jnp.asarray(beta), alpha, eps)
    x = rng.normal(size=(100_000, dim))
    share = alpha * eps / 2 * np.einsum("ni,ij,nj->n", x, bulk, x) / dim
    assert float(out["fluctuation"]) == pytest.approx(np.var(share), rel=0.03)
    assert float(out["tau"]) == pytest.approx(np.mean(share), rel=0.02)
    assert float(out["isotropic"]) < float(out["fluctuation"])
    np.testing.assert_allclose(np.asarray(out["top"]), np.linalg.eigvalsh(bulk)[-3:] / dim,
                               rtol=1e-4, atol=1e-6)
    # along beta_hat and the linear part only: no bulk
    extra = 5 * np.outer(spike, spike) + 2 * (np.outer(spike, linear) + np.outer(linear, spike))
    moved = bulk_fluctuation({"dm": deviation["dm"], "dS": deviation["dS"] + extra},
                             jnp.asarray(beta), alpha, eps)
    assert float(moved["fluctuation"]) == pytest.approx(float(out["fluctuation"]), rel=1e-4)


def test_the_linear_parts_beta_component_is_its_covariance_with_z_on_test_points():
    """linear_beta2 = E_x[h z]^2 and linear_norm2 = E_x[h^2] for the linear field
    h = alpha dm . x / sqrt(D) and z = beta_hat . x: against 200,000 Gaussian test points (2%
    and 1%); dm orthogonal to beta has none, whatever its length."""
    rng = np.random.default_rng(1)
    dim, alpha = 10, 0.7
    beta = rng.normal(size=dim)
    spike = beta / np.linalg.norm(beta)
    dm = rng.normal(size=dim) + 2.0 * spike
    zeros = jnp.zeros((dim, dim))
    out = bulk_fluctuation({"dm": jnp.asarray(dm), "dS": zeros}, jnp.asarray(beta), alpha, 0.1)
    x = rng.normal(size=(200_000, dim))
    h, z = alpha * x @ dm / np.sqrt(dim), x @ spike
    assert float(out["linear_beta2"]) == pytest.approx(np.mean(h * z) ** 2, rel=0.02)
    assert float(out["linear_norm2"]) == pytest.approx(np.mean(h**2), rel=0.01)
    across = dm - (dm @ spike) * spike
    out = bulk_fluctuation({"dm": jnp.asarray(3 * across), "dS": zeros}, jnp.asarray(beta),
                           alpha, 0.1)
    assert abs(float(out["linear_beta2"])) < 1e-9 < float(out["linear_norm2"])


def test_measure_follows_the_sweeps_runs_and_bounds_the_isotropic_share():
    """At a small size the measured runs are the sweep's (same seeds: the same population test
    loss to 1e-6) and F >= F_iso at every time (tr(B^2) >= tr(B)^2 / rank)."""
    import lazyrich

    D, horizon = 12, 4.0
    out = measure(D, 0.5, 0.2, 3.0, horizon=horizon, seeds=[0, 1], n_logs=4)
    assert out.fluctuation.dims == ("seed", "time") and out.top.shape == (2, 4, 3)
    sim = lazyrich.sweep("grokking", alpha=0.5, eps=0.2, D=D, P=36, N=1, n_test=10,
                         lr_scale=D / 20, steps=int(20 * horizon), log_every=20,
                         dynamics="infinite", seed=[0, 1], progress=False)
    reference = sim.test_loss_population.swap_dims(step="time").sel(
        time=out.time.values).transpose("seed", "time")
    np.testing.assert_allclose(out.test_loss_population.values, reference.values, rtol=1e-6)
    assert np.all(out.fluctuation.values >= out.isotropic.values * (1 - 1e-9))
    assert np.all(out.fluctuation.values > 0)
    np.testing.assert_allclose(out.linear_norm2.values, sim.v_norm2.swap_dims(step="time").sel(
        time=out.time.values).transpose("seed", "time").values, rtol=1e-5)
    assert np.all(out.linear_beta2.values <= out.linear_norm2.values)


def test_measure_refuses_bad_input_naming_the_argument_before_any_work():
    from lazyrich.core.checks import MemoryEstimateError

    with pytest.raises(ValueError, match="n_logs=7"):
        measure(12, 0.5, 0.2, 3.0, horizon=4.0, n_logs=7)
    with pytest.raises(ValueError, match="horizon must .* got -4.0"):
        measure(12, 0.5, 0.2, 3.0, horizon=-4.0, n_logs=4)
    with pytest.raises(ValueError, match="alpha must .* got nan"):
        measure(12, float("nan"), 0.2, 3.0, horizon=4.0, n_logs=4)
    with pytest.raises(ValueError, match="eps must"):
        measure(12, 0.5, -0.2, 3.0, horizon=4.0, n_logs=4)
    with pytest.raises(ValueError, match="seeds is empty"):
        measure(12, 0.5, 0.2, 3.0, horizon=4.0, n_logs=4, seeds=[])
    with pytest.raises(MemoryEstimateError, match="D=1000000"):
        measure(1_000_000, 0.5, 0.2, 3.0, horizon=4.0, n_logs=4)
