"""dmft.mean_field: the N -> infinity gradient-flow ODEs against an independent float64 scipy
solve of dmft/README.md's (u, Q) equations, against the engine's `dynamics="infinite"` as
lr_scale shrinks, and its API contract (same dims, coordinates, variables as the engine)."""

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import lazyrich
from dmft import mean_field
from lazyrich.experiments.grokking import GROKKING

SMALL = {"D": 8, "P": 36, "n_test": 40, "steps": 300, "log_every": 30}


def _scipy_curves(seed, alpha, eps, lr_scale, steps, log_every, **sizes):
    """Train / test loss of the README's (u, Q) gradient flow, written in numpy, solved by
    scipy's RK45 at rtol 1e-10 on the experiment's own data (u = 0, Q = 0 at t = 0)."""
    p = GROKKING.defaults(alpha=alpha, eps=eps, seed=seed, dynamics="infinite", **sizes)
    data = jax.device_get(GROKKING.init(jax.random.key(seed), p)["data"])
    x, y = np.asarray(data["x_train"], np.float64), np.asarray(data["y_train"], np.float64)
    n_train, dim = x.shape

    def function(u, q, inputs):
        return inputs @ u / np.sqrt(dim) + np.einsum("pi,ij,pj->p", inputs, q, inputs) / dim

    def rhs(t, flat):
        u, q = flat[:dim], flat[dim:].reshape(dim, dim)
        delta = function(u, q, x) - y
        b = x.T @ delta / (n_train * np.sqrt(dim))
        g = x.T @ (delta[:, None] * x) / (n_train * dim)
        du = -2 * b - 2 * eps / alpha * g @ u
        dq = (-2 * eps**2 * g - 2 * eps / alpha * (g @ q + q @ g)
              - eps / alpha * (np.outer(u, b) + np.outer(b, u)))
        return np.concatenate([du, dq.ravel()])

    times = np.arange(0, steps + 1, log_every) * lr_scale
    solution = solve_ivp(rhs, (0, times[-1]), np.zeros(dim + dim * dim), t_eval=times,
                         rtol=1e-10, atol=1e-12)
    losses = {}
    for split in ("train", "test"):
        inputs = np.asarray(data[f"x_{split}"], np.float64)
        targets = np.asarray(data[f"y_{split}"], np.float64)
        losses[split] = np.array([
            np.mean((function(s[:dim], s[dim:].reshape(dim, dim), inputs) - targets) ** 2)
            for s in solution.y.T])
    return losses


def test_matches_an_independent_scipy_solve_of_the_readme_equations(x64):
    """Train and test loss at every logged time equal a float64 scipy RK45 solve of the
    (u, Q) equations of dmft/README.md on the same data, to 1e-6 relative (tolerances 1e-9)."""
    ds = mean_field.sweep(alpha=[0.5, 2.0], eps=0.2, lr_scale=1.5, seed=3, rtol=1e-9,
                          atol=1e-12, **SMALL)
    for alpha in (0.5, 2.0):
        reference = _scipy_curves(3, alpha, 0.2, 1.5, **SMALL)
        for split in ("train", "test"):
            np.testing.assert_allclose(ds[f"{split}_loss"].sel(alpha=alpha), reference[split],
                                       rtol=1e-6)


@pytest.mark.slow
def test_gradient_descent_converges_to_the_flow_as_lr_scale_shrinks(x64):
    """The engine's dynamics="infinite" (discrete steps) approaches the ODE solution at first
    order: the largest relative test-loss error halves (within 20%) when lr_scale halves
    (0.1 -> 0.05), and is below 1% at lr_scale = 0.05."""
    t_max, n_log = 60.0, SMALL["steps"] // SMALL["log_every"]
    flow = mean_field.sweep(alpha=[1.0, 0.5], eps=0.3, lr_scale=t_max / SMALL["steps"], seed=1,
                            rtol=1e-9, atol=1e-12, **SMALL)
    errors = []
    for lr in (0.1, 0.05):
        steps = int(round(t_max / lr))
        sim = lazyrich.sweep("grokking", dynamics="infinite", alpha=[1.0, 0.5], eps=0.3,
                             lr_scale=lr, seed=1, progress=False,
                             **{**SMALL, "steps": steps, "log_every": steps // n_log})
        np.testing.assert_allclose(sim.time.values, flow.time.values, rtol=1e-12)
        errors.append(float(np.max(np.abs(sim.test_loss.values / flow.test_loss.values - 1))))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all(np.abs(ratios - 2) < 0.4), (errors, ratios)
    assert errors[-1] < 0.01, errors


def test_same_dims_coordinates_and_variables_as_the_engine(x64):
    """Swept lists become dims in keyword order as in lazyrich.sweep; same variables, `step` and
    2-d `time` (lr_scale swept), float64 under x64; attrs carry the method and the solver
    statistics; same data and teacher (identical step-0 losses, where f - f_0 = 0)."""
    kw = {"alpha": [0.5], "seed": [2], "lr_scale": [0.25, 0.5], **SMALL}
    ds = mean_field.sweep(**kw)
    sim = lazyrich.sweep("grokking", dynamics="infinite", progress=False, **kw)
    assert ds.test_loss.dims == sim.test_loss.dims == ("alpha", "seed", "lr_scale", "step")
    assert ds.test_loss.shape == (1, 1, 2, SMALL["steps"] // SMALL["log_every"] + 1)
    assert set(ds.data_vars) == set(sim.data_vars)
    np.testing.assert_array_equal(ds.time.values, sim.time.values)
    assert ds.time.dims == ("lr_scale", "step")
    assert ds.test_loss.dtype == np.float64 and ds.attrs["dtype"] == "float64"
    assert ds.attrs["method"] == "mean_field" and ds.attrs["dynamics"] == "infinite"
    assert ds.attrs["rhs_evaluations"] >= 6 * ds.attrs["solver_steps"] > 0
    assert not ds.diverged.any()
    for name in ("train_loss", "test_loss", "test_loss_population"):
        np.testing.assert_allclose(ds[name].isel(step=0), sim[name].isel(step=0), rtol=1e-12)


@pytest.mark.parametrize("bad, message", [
    ({"dynamics": "network"}, "dynamics='network'"),
    ({"dynamics": ["infinite", "moments"]}, "dynamics=['infinite', 'moments']"),
    ({"train_readout": True}, "train_readout=True"),
    ({"linearized": True}, "linearized=True"),
    ({"rtol": 0.0}, "rtol=0.0"),
    ({"atol": -1.0}, "atol=-1.0"),
    ({"max_steps": 0}, "max_steps=0"),
    ({"alhpa": 1.0}, "alhpa"),
    ({"alpha": -1.0}, "alpha=-1.0"),
])
def test_bad_input_is_refused_by_name(bad, message):
    """Bad options and parameters are refused before any work, naming the argument."""
    with pytest.raises(ValueError) as info:
        mean_field.sweep(**{**SMALL, **bad})
    assert message in str(info.value)
