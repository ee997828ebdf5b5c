"""The fixed-point solver (dmft/fixed_point.py): Anderson mixing reaches the damped iteration's
fixed point in fewer iterations, on a linear map with a known solution and on the grokking
DMFT; the DMFT's numerical knobs (bulk rank, tolerance) converge."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cubic_decay_map

from dmft import ConvergenceWarning, grokking
from dmft.fixed_point import STALLED_AFTER, anderson_mix, iterate_to_fixed_point


def _linear_map(seed=0, size=40, contraction=0.95):
    """x -> A x + b with spectral radius `contraction` (slow for plain damping), solution
    (1 - A)^-1 b in float64 numpy."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.normal(size=(size, size)))[0]
    a = q @ np.diag(contraction * np.linspace(-1, 1, size)) @ q.T
    b = rng.normal(size=size)
    return a, b, np.linalg.solve(np.eye(size) - a, b)


@pytest.mark.parametrize("history", [0, 5])
def test_iteration_reaches_the_linear_solution(x64, history):
    """Both mixings converge to (1 - A)^-1 b within 1e-9; Anderson (history 5) in under a
    third of the damped iterations (measured 167 against 939 at damping 0.5); the map is traced
    twice (output shape, one compilation), not once per iteration."""
    a, b, exact = _linear_map()
    matrix, offset = jnp.asarray(a), jnp.asarray(b)

    traces = []

    def step(state):
        traces.append(1)                       # runs only when jax traces the map
        new = {"x": state["x"] @ matrix.T + offset}
        return new, {"curve": new["x"]}

    def curve(out):
        return out["curve"]

    state, _, iterations, residual = iterate_to_fixed_point(
        step, {"x": jnp.zeros((1, 40))}, curve, damping=0.5, tol=1e-12,
        max_iter=3000, progress=False, what="test", knobs="", history=history)
    np.testing.assert_allclose(np.asarray(state["x"][0]), exact, atol=1e-9)
    assert residual <= 1e-12
    # one compiled program for all iterations: traced for the output shape and once for jit
    assert len(traces) == 2
    if history:
        assert iterations < 250
    else:
        assert iterations > 750
    # a caller that needs only the outputs gets no state back, the same outputs, and the
    # compiled program of the first call (the eval_shape of the outputs traces once more)
    none, outputs, again, _ = iterate_to_fixed_point(
        step, {"x": jnp.zeros((1, 40))}, curve, damping=0.5, tol=1e-12,
        max_iter=3000, progress=False, what="test", knobs="", history=history,
        return_state=False)
    assert none is None and again == iterations and len(traces) == 3
    np.testing.assert_allclose(np.asarray(outputs["curve"][0]), exact, atol=1e-9)


def test_anderson_with_empty_history_is_plain_damping(x64):
    """The first Anderson step (nothing stored yet) equals x + damping (F(x) - x)."""
    rng = np.random.default_rng(1)
    x, g = jnp.asarray(rng.normal(size=(2, 7))), jnp.asarray(rng.normal(size=(2, 7)))
    memory = (jnp.zeros((2, 3, 7)), jnp.zeros((2, 3, 7)), x, x, jnp.zeros(2, bool))
    mixed, _ = anderson_mix(x, g, memory, 0.3)
    np.testing.assert_allclose(np.asarray(mixed), np.asarray(x + 0.3 * (g - x)), atol=1e-15)


_SMALL = {"t_max": 150.0, "dt": 5.0, "D": 30, "n_samples": 100, "n_response": 4,
          "bulk_rank": 31, "progress": False}


@pytest.fixture(scope="module")
def damped():
    """The grokking DMFT at alpha = 1, eps = 0.1, D = 30 (the spike grows within the run), plain
    damping to tol = 1e-9, full bulk rank (n = 31)."""
    return grokking.solve(1.0, 0.1, 3.0, tol=1e-9, anderson=0, **_SMALL)


def _max_change(solved, reference, var):
    return np.max(np.abs(solved[var].values - reference[var].values)) / np.max(
        np.abs(reference[var].values))


def test_accelerated_dmft_reaches_the_damped_fixed_point(damped):
    """Anderson mixing (history 5) to the same tolerance: train, test and spike curves agree
    with the damped solution within 1e-7 relative, in fewer iterations."""
    accelerated = grokking.solve(1.0, 0.1, 3.0, tol=1e-9, anderson=5, **_SMALL)
    for var in ("train_loss", "test_loss", "beta_M_beta"):
        assert _max_change(accelerated, damped, var) < 1e-7
    assert accelerated.attrs["iterations"] < damped.attrs["iterations"]
    assert accelerated.attrs["converged"] and damped.attrs["converged"]


def test_float32_solve_agrees_with_float64(damped):
    """dtype="float32" to tol 1e-6: train, test and spike curves within 1e-4 relative of the
    float64 solution (measured ~1e-6 here and at D = 100-200, dmft/README.md), float64 arrays
    out, attrs["dtype"] recorded; a tol float32 cannot resolve is refused naming it."""
    single = grokking.solve(1.0, 0.1, 3.0, tol=1e-6, dtype="float32", **_SMALL)
    assert single.attrs["dtype"] == "float32" and damped.attrs["dtype"] == "float64"
    for var in ("train_loss", "test_loss", "beta_M_beta"):
        assert single[var].dtype == np.float64
        assert _max_change(single, damped, var) < 1e-4
    with pytest.raises(ValueError, match="tol=1e-09.*float32"):
        grokking.solve(1.0, 0.1, 3.0, tol=1e-9, dtype="float32", **_SMALL)
    with pytest.raises(ValueError, match="dtype must be one of"):
        grokking.solve(1.0, 0.1, 3.0, dtype="float16", **_SMALL)


def test_tolerance_and_bulk_rank_converge(damped):
    """Loosening tol from 1e-9 to 1e-4 moves the curves by less than 1e-3 relative; keeping
    rank 16 of the bulk covariance (its dropped eigenvalues fall fast) instead of all 31 by less
    than 1e-6; stopping at max_iter warns."""
    loose = grokking.solve(1.0, 0.1, 3.0, tol=1e-4, anderson=0, **_SMALL)
    ranked = grokking.solve(1.0, 0.1, 3.0, tol=1e-9, anderson=0, **{**_SMALL, "bulk_rank": 16})
    assert ranked.attrs["bulk_truncation"] < 1e-8
    for var in ("train_loss", "test_loss"):
        assert _max_change(loose, damped, var) < 1e-3
        assert _max_change(ranked, damped, var) < 1e-6
    with pytest.warns(ConvergenceWarning):
        grokking.solve(1.0, 0.1, 3.0, tol=0.0, max_iter=3, **_SMALL)


def test_stratified_response_paths_estimate_the_same_average():
    """`response_paths`: the stratified choice takes the largest |z| exactly and one path per
    |z| stratum of the rest, weights summing to 1; with M_R = M both choices are the exact
    average and give the same solution (1e-10)."""
    import numpy as np

    from dmft import grokking

    z = np.random.default_rng(0).normal(size=40)
    index, weight = grokking.response_paths(z, 8, "stratified")
    assert np.isclose(weight.sum(), 1.0) and len(set(index.tolist())) == 8
    assert set(index[:2].tolist()) == set(np.argsort(-np.abs(z))[:2].tolist())
    assert np.all(weight[:2] == 1 / 40) and np.all(weight[2:] > 1 / 40)
    first, equal = grokking.response_paths(z, 8, "first")
    assert first.tolist() == list(range(8)) and np.allclose(equal, 1 / 8)
    common = {"t_max": 200.0, "D": 10, "n_samples": 16, "n_response": 16, "tol": 1e-8,
              "max_iter": 40, "progress": False}
    a = grokking.solve(1.0, 0.1, 4.0, 1.0, response_sampling="first", **common)
    b = grokking.solve(1.0, 0.1, 4.0, 1.0, response_sampling="stratified", **common)
    np.testing.assert_allclose(a.test_loss.values, b.test_loss.values, rtol=1e-10)
    with pytest.raises(ValueError, match="response_sampling must be one of"):
        grokking.solve(1.0, 0.1, 4.0, 1.0, response_sampling="random", **common)


def test_time_windows_converge_where_the_whole_grid_iteration_diverges(x64):
    """Over 20 time units the whole-grid iteration of x' = -x^3 blows up (the second iterate
    reaches -19 at the end, its cube feeds the third); with the causal horizon the iteration
    falls back to time windows and reaches the march's solution within 1e-10. Without a
    horizon the divergence is reported as a nan residual, not as converged curves."""
    step, exact = cubic_decay_map(400, 0.05)
    settings = dict(damping=0.6, tol=1e-12, max_iter=2000, progress=False, what="test",
                    knobs="")
    start = {"x": jnp.zeros((1, 400))}
    _, _, _, residual = iterate_to_fixed_point(step, start, lambda out: out["x"], **settings)
    assert np.isnan(residual)
    state, _, _, residual = iterate_to_fixed_point(step, start, lambda out: out["x"],
                                                   horizon={"x": np.arange(400)}, **settings)
    assert residual <= 1e-12
    np.testing.assert_allclose(np.asarray(state["x"][0]), exact, atol=1e-10)


def test_a_short_grid_never_uses_windows(x64):
    """Where the whole-grid iteration converges, the horizon changes nothing: same iterate,
    same iteration count."""
    step, exact = cubic_decay_map(40, 0.05)
    settings = dict(damping=0.6, tol=1e-12, max_iter=2000, progress=False, what="test",
                    knobs="")
    start = {"x": jnp.zeros((1, 40))}
    plain = iterate_to_fixed_point(step, start, lambda out: out["x"], **settings)
    windowed = iterate_to_fixed_point(step, start, lambda out: out["x"],
                                      horizon={"x": np.arange(40)}, **settings)
    assert plain[2] == windowed[2]
    np.testing.assert_array_equal(np.asarray(plain[0]["x"]), np.asarray(windowed[0]["x"]))
    np.testing.assert_allclose(np.asarray(plain[0]["x"][0]), exact, atol=1e-10)


def test_a_stalled_iteration_halves_its_damping(x64):
    """x -> lam x + (1 - lam) y with lam = -2.33, from x = 0.9 y: damping 0.6 turns it into an
    oscillation that shrinks by 0.998 per iteration (10,000 iterations to 1e-10); with a
    horizon the stall is detected after 2 x STALLED_AFTER iterations and damping 0.3 (factor
    0.001) converges at once. Without a horizon the iteration keeps damping 0.6 and stops
    unconverged, with a warning."""
    lam, target = -2.33, jnp.asarray(np.linspace(1.0, 2.0, 5))[None]

    def step(state):
        new = lam * state["x"] + (1 - lam) * target
        return {"x": new}, {"x": new}

    settings = dict(damping=0.6, tol=1e-10, max_iter=300, progress=False, what="test",
                    knobs="")
    start = {"x": 0.9 * target}
    state, _, iterations, residual = iterate_to_fixed_point(
        step, start, lambda out: out["x"], horizon={"x": np.arange(5)}, **settings)
    assert residual <= 1e-10 and iterations < 2 * STALLED_AFTER + 10
    np.testing.assert_allclose(np.asarray(state["x"]), np.asarray(target), atol=1e-9)
    with pytest.warns(ConvergenceWarning, match="max_iter=300"):
        _, _, iterations, residual = iterate_to_fixed_point(step, start, lambda out: out["x"],
                                                            **settings)
    assert iterations == 300 and residual > 1e-4


def test_a_monotone_crawl_keeps_its_damping(x64):
    """x -> 0.995 x + 0.005 y converges monotonically at 0.997 per iteration under damping
    0.6: its residual falls by less than 10% in STALLED_AFTER iterations, but smaller steps
    would only slow it, so the horizon leaves the iteration exactly as it is."""
    target = jnp.asarray(np.linspace(1.0, 2.0, 5))[None]

    def step(state):
        new = 0.995 * state["x"] + 0.005 * target
        return {"x": new}, {"x": new}

    settings = dict(damping=0.6, tol=1e-6, max_iter=200, progress=False, what="test",
                    knobs="")
    start = {"x": 0.5 * target}
    with pytest.warns(ConvergenceWarning):
        plain = iterate_to_fixed_point(step, start, lambda out: out["x"], **settings)
    with pytest.warns(ConvergenceWarning):
        windowed = iterate_to_fixed_point(step, start, lambda out: out["x"],
                                          horizon={"x": np.arange(5)}, **settings)
    assert plain[2] == windowed[2] == 200
    np.testing.assert_array_equal(np.asarray(plain[0]["x"]), np.asarray(windowed[0]["x"]))


def test_a_horizon_of_another_layout_is_refused(x64):
    """A horizon whose leaves do not match the state's is refused, naming the argument."""
    step, _ = cubic_decay_map(10, 0.05)
    with pytest.raises(ValueError, match="horizon has 2 leaves; the state has 1"):
        iterate_to_fixed_point(step, {"x": jnp.zeros((1, 10))}, lambda out: out["x"],
                               horizon={"x": np.arange(10), "y": np.arange(10)}, damping=0.6,
                               tol=1e-6, max_iter=5, progress=False, what="test", knobs="")
