"""The grokking model against independent computations: plain re-implementations, jax.jacobian,
float64 numpy, Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazyrich
from lazyrich.experiments import grokking
from lazyrich.experiments import grokking_model as model

SMALL = {"D": 12, "N": 40, "P": 30, "n_test": 64}


def _run(params, steps):
    state = grokking.init(jax.random.key(params["seed"]), params)
    for _ in range(steps):
        state = grokking.step(state, params)
    return state


def _plain_loss(weights, readouts, weights0, readouts0, x, y, alpha, eps):
    """Loss of paper page Sec. 1 written out directly: mean (f - f0 - y)^2 / alpha^2."""
    def f(w, a):
        h = x @ w.T / np.sqrt(x.shape[1])
        return alpha * (h + eps / 2 * h**2) @ a / w.shape[0]
    return jnp.mean((f(weights, readouts) - f(weights0, readouts0) - y) ** 2) / alpha**2


@pytest.mark.parametrize("train_readout", [False, True])
def test_step_is_gradient_descent_on_the_plain_loss(x64, train_readout):
    """One engine step = W - eta * grad of an independently written loss, eta = lr_scale N
    (float64, 1e-12 relative); the closed-form update of paper page Sec. 2b agrees too."""
    p = lazyrich.get_experiment("grokking").defaults(alpha=0.7, eps=0.3, lr_scale=0.4,
                                                     train_readout=train_readout,
                                                     dynamics="network", **SMALL)
    state = _run(p, 3)
    new = grokking.step(state, p)
    data = state["data"]
    readouts = state["net"].get("a", jnp.ones(p["N"]))
    readouts0 = state["net0"].get("a", jnp.ones(p["N"]))
    grad_w, grad_a = jax.grad(_plain_loss, argnums=(0, 1))(
        state["net"]["W"], readouts, state["net0"]["W"], readouts0, data["x_train"],
        data["y_train"], p["alpha"], p["eps"])
    eta = p["lr_scale"] * p["N"]
    np.testing.assert_allclose(new["net"]["W"], state["net"]["W"] - eta * grad_w, rtol=1e-12)
    if train_readout:
        np.testing.assert_allclose(new["net"]["a"], readouts - eta * grad_a, rtol=1e-12)
    else:
        residual = (model.network_output(state["net"], data["x_train"], p["alpha"], p["eps"])
                    - state["f0_train"] - data["y_train"])
        x, k = np.asarray(data["x_train"]), 2 * p["lr_scale"] / p["alpha"]
        b = x.T @ residual / (p["P"] * np.sqrt(p["D"]))
        g = x.T @ np.diag(residual) @ x / (p["P"] * p["D"])
        closed = state["net"]["W"] - k * (b + p["eps"] * state["net"]["W"] @ g)
        np.testing.assert_allclose(new["net"]["W"], closed, rtol=1e-11, atol=1e-13)


def test_centred_output_is_zero_at_step_zero_for_every_alpha():
    """The centred prediction starts at 0, so the step-0 train loss is mean(y^2) for every
    alpha, and the sufficient statistics start at 0."""
    ds = lazyrich.sweep("grokking", alpha=[1 / 32, 1.0, 32.0], steps=10, log_every=10,
                        progress=False, **SMALL)
    first = ds.isel(step=0)
    np.testing.assert_allclose(first.train_loss, first.train_loss.isel(alpha=0), rtol=1e-6)
    for var in ("v_norm2", "beta_M_beta", "trace_M", "frob_M", "param_movement"):
        np.testing.assert_array_equal(first[var], 0.0)
    p = lazyrich.get_experiment("grokking").defaults(alpha=32.0, **SMALL)
    state = grokking.init(jax.random.key(0), p)
    y = np.asarray(state["data"]["y_train"])
    assert float(first.train_loss.sel(alpha=32.0)) == pytest.approx(np.mean(y**2), rel=1e-5)


def test_moments_dynamics_equals_network_dynamics(x64):
    """Paper page Sec. 2b: the moment reduction from the same W_0 reproduces direct gradient
    descent on the N x D weights (float64, 1e-9 relative after 300 steps)."""
    common = dict(alpha=[0.5, 2.0], eps=0.1, seed=[0, 1], steps=300, log_every=50,
                  progress=False, **SMALL)
    net = lazyrich.sweep("grokking", dynamics="network", **common)
    mom = lazyrich.sweep("grokking", dynamics="moments", **common)
    for var in ("train_loss", "test_loss", "test_loss_population", "v_norm2", "beta_M_beta",
                "trace_M", "frob_M", "alignment", "param_movement"):
        np.testing.assert_allclose(mom[var], net[var], rtol=1e-9, atol=1e-12, err_msg=var)
    assert float(net.train_loss.isel(step=-1).max()) < 0.5 * float(net.train_loss.isel(step=0)
                                                                   .min())


def test_infinite_width_is_the_limit_of_the_network():
    """The network approaches the N -> infinity moments dynamics as N grows (the initial
    moments fluctuate as 1/sqrt(N)): the test-loss gap shrinks over 4x from N=16 to N=4096
    (1/sqrt(N) predicts 16x)."""
    common = dict(alpha=1.0, eps=0.2, seed=[0, 1, 2, 3], steps=400, log_every=100,
                  D=12, P=30, n_test=64, progress=False)
    limit = lazyrich.sweep("grokking", dynamics="infinite", N=16, **common).test_loss
    gaps = []
    for width in (16, 4096):
        net = lazyrich.sweep("grokking", N=width, **common).test_loss
        gaps.append(float(np.abs(net - limit).mean()))
    assert gaps[1] < 0.25 * gaps[0]


def test_ntk_closed_form_equals_jacobian_product(x64):
    """`network_ntk` equals J J^T with J from jax.jacrev (fixed and trained readouts)."""
    key = jax.random.key(3)
    weights = jax.random.normal(key, (7, 5))
    x1, x2 = jax.random.normal(jax.random.key(4), (6, 5)), jax.random.normal(jax.random.key(5),
                                                                            (4, 5))
    for net in ({"W": weights}, {"W": weights, "a": jnp.linspace(0.5, 1.5, 7)}):
        def output(params, x):
            return model.network_output(params, x, 1.7, 0.3)
        j1 = jax.tree_util.tree_leaves(jax.jacrev(output)(net, x1))
        j2 = jax.tree_util.tree_leaves(jax.jacrev(output)(net, x2))
        expected = sum(a.reshape(len(x1), -1) @ b.reshape(len(x2), -1).T
                       for a, b in zip(j1, j2, strict=True))
        np.testing.assert_allclose(model.network_ntk(net, x1, x2, 1.7, 0.3), expected,
                                   rtol=1e-12)


def test_function_coefficients_reproduce_the_network(x64):
    """f - f_0 = v.x/sqrt(D) + x^T M x / D exactly, with trained readouts too."""
    p = lazyrich.get_experiment("grokking").defaults(alpha=0.5, eps=0.4, train_readout=True,
                                                     **SMALL)
    state = _run(p, 5)
    x = state["data"]["x_test"]
    v, M = model.network_function_coefficients(state["net"], state["net0"], p["alpha"],
                                               p["eps"])
    quadratic = v @ x.T / np.sqrt(p["D"]) + jnp.sum((x @ M) * x, axis=1) / p["D"]
    direct = (model.network_output(state["net"], x, p["alpha"], p["eps"])
              - model.network_output(state["net0"], x, p["alpha"], p["eps"]))
    np.testing.assert_allclose(quadratic, direct, rtol=1e-10, atol=1e-13)


def test_linearized_model_matches_network_when_lazy_and_starts_equal():
    """The linearised model starts from the same losses and, at large alpha (lazy), tracks
    the network ever closer (gap ~ 1/alpha, within 0.5% at alpha=1024); the kernel regression
    test loss is alpha-independent (alpha cancels in ridgeless regression)."""
    ds = lazyrich.sweep("grokking", alpha=[1.0, 64.0, 1024.0], linearized=True, steps=300,
                        log_every=100, progress=False, eps=0.2, **SMALL)
    np.testing.assert_allclose(ds.lin_train_loss.isel(step=0), ds.train_loss.isel(step=0))
    gap = np.abs(ds.lin_test_loss - ds.test_loss) / ds.test_loss
    assert float(gap.sel(alpha=1024.0).max()) < 5e-3
    assert float(gap.sel(alpha=1024.0).max()) < 0.25 * float(gap.sel(alpha=64.0).max())
    np.testing.assert_allclose(ds.kernel_test_loss.sel(alpha=1.0),
                               ds.kernel_test_loss.sel(alpha=1024.0), rtol=1e-4)
    assert ds.kernel_test_loss.dims == ("alpha",)


def test_kernel_test_loss_in_float32_agrees_with_float64(x64):
    """kernel_test_loss from a float32 copy of the same initial state agrees with float64 to
    1e-3 relative (the NTK's condition number is ~1e5; the solve runs in float64)."""
    p = lazyrich.get_experiment("grokking").defaults(D=40, N=200, P=200, n_test=300,
                                                     linearized=True)
    state = grokking.init(jax.random.key(0), p)
    exact = float(grokking.run_metrics(state, p)["kernel_test_loss"])
    single = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), state)
    p32 = {**p, "alpha": jnp.float32(p["alpha"]), "eps": jnp.float32(p["eps"])}
    approx = grokking.run_metrics(single, p32)["kernel_test_loss"]
    assert approx.dtype == jnp.float32
    assert float(approx) == pytest.approx(exact, rel=1e-3)
