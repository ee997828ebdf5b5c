"""Shared metrics against numpy float64 references."""

import jax.numpy as jnp
import numpy as np
import pytest

from lazyrich.core.sampling import normal_blocks
from lazyrich.measures.metrics import kernel_regression, relative_parameter_movement, safe_divide


def test_kernel_regression_equals_a_numpy_solve(x64):
    rng = np.random.default_rng(0)
    x, xt = rng.normal(size=(20, 5)), rng.normal(size=(7, 5))
    def kernel(a, b):
        return np.exp(-0.5 * ((a[:, None] - b[None]) ** 2).sum(-1) / 4)
    y = rng.normal(size=20)
    expected = kernel(xt, x) @ np.linalg.solve(kernel(x, x) + 0.1 * np.eye(20), y)
    ours = kernel_regression(jnp.asarray(kernel(x, x)), jnp.asarray(kernel(xt, x)),
                             jnp.asarray(y), ridge=0.1)
    np.testing.assert_allclose(ours, expected, rtol=1e-10)


def test_ridgeless_kernel_regression_interpolates_and_survives_a_singular_kernel(x64):
    """A rank-3 linear kernel on 10 points: the pseudo-inverse gives the least-squares fit."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 3))
    y = x @ np.array([1.0, -2.0, 0.5])
    prediction = kernel_regression(jnp.asarray(x @ x.T), jnp.asarray(x @ x.T), jnp.asarray(y))
    np.testing.assert_allclose(prediction, y, atol=1e-9)


def test_kernel_regression_is_float64_accurate_in_float32_mode():
    """An ill-conditioned kernel (eigenvalues from 1 to 1e-6) handed over in float32 is solved
    in float64: predictions match numpy float64 on the same float32 entries to 1e-5."""
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.normal(size=(30, 30)))
    kernel = ((q * np.logspace(0, -6, 30)) @ q.T).astype(np.float32)
    y = rng.normal(size=30).astype(np.float32)
    ours = kernel_regression(jnp.asarray(kernel), jnp.asarray(kernel[:5]), jnp.asarray(y))
    assert ours.dtype == jnp.float32
    k64 = kernel.astype(np.float64)
    expected = k64[:5] @ np.linalg.solve(k64, y.astype(np.float64))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def test_relative_parameter_movement_and_safe_divide():
    params0 = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    params = {"a": jnp.ones(3) * 2, "b": jnp.ones((2, 2))}
    assert float(relative_parameter_movement(params, params0)) == pytest.approx(3 / 7)
    assert float(safe_divide(jnp.asarray(0.0), jnp.asarray(0.0))) == 0.0
    assert float(safe_divide(jnp.asarray(3.0), jnp.asarray(2.0))) == 1.5


def test_normal_blocks_have_the_asked_shapes_and_unit_variance():
    import jax
    blocks = normal_blocks(jax.random.key(0), {"a": (3,), "b": (200, 50)})
    assert blocks["a"].shape == (3,) and blocks["b"].shape == (200, 50)
    assert abs(float(blocks["b"].std()) - 1.0) < 0.02


def test_metrics_and_plot_import_by_their_public_names():
    """`from lazyrich.metrics import ...` / `from lazyrich.plot import ...` reach the layered
    modules that `lazyrich.metrics` / `lazyrich.plot` name."""
    from lazyrich.metrics import grokking_times
    from lazyrich.plot import compare

    import lazyrich

    assert grokking_times is lazyrich.metrics.grokking_times
    assert compare is lazyrich.plot.compare
