"""The chunked empirical NTK and the rich/lazy measures against brute-force numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lazyrich.experiments import rnn_rank
from lazyrich.measures import metrics


def _tiny_rnn(seed=0, n=8, n_in=4, steps=3, batch=2, outputs=3):
    """A tiny ReLU RNN (N = 8, T = 3, B = 2, K = 3) with leak 0.7 and its inputs."""
    keys = jax.random.split(jax.random.key(seed), 4)
    weights = {"W_in": jax.random.normal(keys[0], (n, n_in)) / 2,
               "W_h": jax.random.normal(keys[1], (n, n)) / np.sqrt(n),
               "W_out": jax.random.normal(keys[2], (outputs, n)) / np.sqrt(n)}
    inputs = jax.random.normal(keys[3], (steps, batch, n_in))
    return weights, inputs


def _per_output_loop_kernel(weights, inputs, leak):
    """What the authors' script does: one gradient per output (t, b, k) w.r.t. W_h, stacked,
    then K = J J^T (numpy float64)."""
    def output(W_h, t, b, k):
        return rnn_rank.run({**weights, "W_h": W_h}, inputs, leak)[1][t, b, k]
    grad = jax.jit(jax.grad(output))
    steps, batch = inputs.shape[:2]
    rows = [np.ravel(grad(weights["W_h"], t, b, k)) for t in range(steps)
            for b in range(batch) for k in range(3)]
    jacobian = np.asarray(rows, np.float64)
    return jacobian @ jacobian.T, jacobian


def test_ntk_equals_a_per_output_gradient_loop_on_a_tiny_rnn(x64):
    """jvp/vjp chunks in a lax.map == stacking one gradient per output, to 1e-10 (float64);
    chunk sizes that do not divide P = 18 are padded correctly; tr K = ||J||_F^2."""
    weights, inputs = _tiny_rnn()
    expected, jacobian = _per_output_loop_kernel(weights, inputs, 0.7)
    for chunk_size in (None, 1, 5, 18):
        kernel = jax.jit(lambda w, c=chunk_size: metrics.empirical_ntk(
            lambda v: rnn_rank.run(v, inputs, 0.7)[1], w, wrt=("W_h",), chunk_size=c))(weights)
        assert kernel.shape == (18, 18)
        np.testing.assert_allclose(kernel, expected, rtol=1e-10, atol=1e-12)
        assert float(jnp.trace(kernel)) == pytest.approx(float(np.sum(jacobian**2)), rel=1e-12)


def test_ntk_of_all_parameters_is_the_sum_over_groups(x64):
    """Without `wrt` every leaf counts: K = sum over groups of J_g J_g^T (jax.jacrev reference)."""
    weights, inputs = _tiny_rnn(seed=1)
    def outputs(w):
        return rnn_rank.run(w, inputs, 1.0)[1].ravel()
    kernel = metrics.empirical_ntk(outputs, weights, chunk_size=7)
    jacobian = jax.jacrev(outputs)(weights)
    expected = sum(np.asarray(j).reshape(18, -1) @ np.asarray(j).reshape(18, -1).T
                   for j in jacobian.values())
    np.testing.assert_allclose(kernel, expected, rtol=1e-10, atol=1e-12)


def test_ntk_refuses_bad_wrt_and_chunk_size():
    weights, inputs = _tiny_rnn()
    def fn(w):
        return rnn_rank.run(w, inputs, 1.0)[1]
    with pytest.raises(ValueError, match="W_x"):
        metrics.empirical_ntk(fn, weights, wrt=("W_x",))
    with pytest.raises(ValueError, match="chunk_size=0"):
        metrics.empirical_ntk(fn, weights, chunk_size=0)
    with pytest.raises(TypeError, match="dict"):
        metrics.empirical_ntk(lambda w: w * 2, jnp.ones(3), wrt=("a",))


def test_kernel_alignment_properties_and_centred_form(x64):
    """KA(K, cK) = 1; PSD kernels give KA in [0, 1]; symmetric; centred = numpy H K H cosine."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 4)), rng.normal(size=(10, 6))
    K1, K2 = a @ a.T, b @ b.T
    assert float(metrics.kernel_alignment(K1, 3.5 * K1)) == pytest.approx(1.0, abs=1e-12)
    value = float(metrics.kernel_alignment(K1, K2))
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(float(metrics.kernel_alignment(K2, K1)), rel=1e-12)
    assert value == pytest.approx(np.sum(K1 * K2) / np.linalg.norm(K1) / np.linalg.norm(K2))
    H = np.eye(10) - np.ones((10, 10)) / 10
    C1, C2 = H @ K1 @ H, H @ K2 @ H
    expected = np.sum(C1 * C2) / np.linalg.norm(C1) / np.linalg.norm(C2)
    assert float(metrics.kernel_alignment(K1, K2, centered=True)) == pytest.approx(expected)
    batched = metrics.kernel_alignment(jnp.stack([K1, K2]), jnp.stack([K2, K2]))
    np.testing.assert_allclose(batched, [value, 1.0], rtol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        metrics.kernel_alignment(K1, K2[:5, :5])
    with pytest.raises(ValueError, match="square"):
        metrics.kernel_alignment(a, a)


def test_representation_target_sign_and_weight_measures(x64):
    rng = np.random.default_rng(1)
    h0, h1 = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
    G0, G1 = h0 @ h0.T, h1 @ h1.T
    assert float(metrics.representation_alignment(h0, h1)) == pytest.approx(
        np.sum(G0 * G1) / np.linalg.norm(G0) / np.linalg.norm(G1))
    y = rng.normal(size=12)
    assert float(metrics.kernel_target_alignment(G0, y)) == pytest.approx(
        y @ G0 @ y / (y @ y) / np.linalg.norm(G0))
    relu0, relu1 = np.maximum(h0, 0), np.maximum(h1, 0)
    assert float(metrics.sign_similarity(relu0, relu1)) == pytest.approx(
        np.mean((relu0 > 0) == (relu1 > 0)))
    assert float(metrics.sign_similarity(relu0, 2 * relu0)) == 1.0
    params0 = {"a": jnp.ones((2, 2)), "b": jnp.full(3, 2.0)}
    params = {"a": jnp.zeros((2, 2)), "b": jnp.full(3, 2.0)}
    change = metrics.weight_change(params, params0)
    assert float(change["a"]) == pytest.approx(2.0) and float(change["b"]) == 0.0
    assert float(metrics.relative_weight_change(params, params0)["a"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="groups"):
        metrics.weight_change({"a": 1.0}, params0)
    with pytest.raises(ValueError, match="target has shape"):
        metrics.kernel_target_alignment(G0, y[:3])
