"""The lazy-limit kernel theory (dmft/kernel.py) against simulation and closed forms."""

import numpy as np
import pytest

import lazyrich
from dmft import kernel

SMALL = {"D": 10, "P": 30, "n_test": 40, "eps": 0.3, "lr_scale": 0.5, "steps": 400,
         "log_every": 50}


def test_curves_equal_the_simulated_linearised_network(x64):
    """With the runs' own initial NTK the kernel curves are the engine's lin_train_loss and
    lin_test_loss (two seeds, float64, 1e-9 relative): GD on a linear model is kernel GD."""
    sim = lazyrich.sweep("grokking", seed=[0, 1], N=24, linearized=True, progress=False,
                         **SMALL)
    theory = kernel.grokking_lazy_curves(seed=[0, 1], N=24, **SMALL)
    np.testing.assert_allclose(theory.train_loss, sim.lin_train_loss, rtol=1e-9)
    np.testing.assert_allclose(theory.test_loss, sim.lin_test_loss, rtol=1e-9)
    np.testing.assert_allclose(theory.time, sim.time)


def test_large_alpha_simulation_follows_the_lazy_theory():
    """At alpha = 1000 the (nonlinear) network's test loss is within 1% of the theory."""
    sim = lazyrich.sweep("grokking", alpha=1000.0, seed=[0, 1], N=24, progress=False, **SMALL)
    theory = kernel.grokking_lazy_curves(seed=[0, 1], N=24, **SMALL)
    np.testing.assert_allclose(sim.test_loss.values, theory.test_loss.values, rtol=1e-2)


def test_infinite_width_kernel_is_the_limit_of_finite_width_kernels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 8))
    limit = kernel.grokking_infinite_width_kernel(x, x, eps=0.5, init_scale=1.3)
    weights = 1.3 * rng.normal(size=(400_000, 8))
    finite = kernel.grokking_finite_width_kernel(weights, x, x, eps=0.5)
    np.testing.assert_allclose(finite, limit, atol=5e-3 * np.abs(limit).max())


def test_long_time_limit_is_kernel_regression_and_flow_matches_small_steps():
    """Late-time test predictions approach ridgeless kernel regression; gradient descent with
    a small step approaches gradient flow at equal time."""
    rng = np.random.default_rng(1)
    x, xt = rng.normal(size=(12, 4)), rng.normal(size=(6, 4))
    k_train = kernel.grokking_infinite_width_kernel(x, x, eps=1.0)
    k_test = kernel.grokking_infinite_width_kernel(xt, x, eps=1.0)
    y, yt = rng.normal(size=12), rng.normal(size=6)
    prediction = k_test @ np.linalg.solve(k_train, y)
    train, test = kernel.learning_curves(k_train, k_test, y, yt, [0, 1e7], learning_rate=1.0)
    assert train[0] == pytest.approx(np.mean(y**2)) and test[0] == pytest.approx(np.mean(yt**2))
    assert train[1] < 1e-12
    assert test[1] == pytest.approx(np.mean((prediction - yt) ** 2), rel=1e-6)
    flow = kernel.learning_curves(k_train, k_test, y, yt, [50.0], 1.0, discrete=False)
    steps = kernel.learning_curves(k_train, k_test, y, yt, [5000], 0.01)
    np.testing.assert_allclose(steps, flow, rtol=1e-2)


def test_bad_input_is_refused():
    k = np.eye(3)
    with pytest.raises(ValueError, match="kernel_train has shape"):
        kernel.learning_curves(np.eye(2), np.ones((1, 3)), np.ones(3), np.ones(1), [1], 0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        kernel.learning_curves(k, np.ones((1, 3)), np.ones(3), np.ones(1), [1], -0.1)
    with pytest.raises(ValueError, match="stability limit"):
        kernel.learning_curves(k, np.ones((1, 3)), np.ones(3), np.ones(1), [1], 10.0)
    with pytest.raises(ValueError, match="N="):
        kernel.grokking_lazy_curves(N=0)
