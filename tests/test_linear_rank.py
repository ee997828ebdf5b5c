"""The `linear_rank` experiment against the closed forms of Theorem 1 and Prop. 1 (float64)."""

import jax
import numpy as np
import pytest

import lazyrich
from dmft import linear
from lazyrich.experiments import linear_rank

THEORY = {"d": 20, "h": 50, "sigma": 1e-3, "lr": 0.1, "steps": 600, "log_every": 100}


def _initial(seed, **overrides):
    """(M0, w) of one run, drawn by the experiment's own init."""
    experiment = lazyrich.get_experiment("linear_rank")
    params = experiment.defaults(seed=seed, **{k: v for k, v in THEORY.items()}, **overrides)
    state = experiment.init(jax.random.key(seed), params)
    weights = state["weights"]
    return linear.initial_kernel_matrix(weights["W1"], weights["W2"]), np.asarray(state["w"])


@pytest.fixture(scope="module")
def averaged():
    """rank x 200 tasks, one seed, float64: trained to convergence (loss < 1e-20)."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    ds = lazyrich.sweep("linear_rank", rank=[1, 2, 5, 10, 20], task_seed=range(200),
                        progress=False, **THEORY)
    jax.config.update("jax_enable_x64", previous)
    return ds


def test_per_task_alignment_equals_theorem_1_to_1e6(averaged, x64):
    """sigma = 1e-3, d = 20, h = 50: KA(M0, MT) = (w^T M0 w + tr M0) / (sqrt(d+3) ||M0||)."""
    assert float(averaged.loss.isel(step=-1).max()) < 1e-20
    for rank in (1, 5, 20):
        for task_seed in (0, 7, 123):
            M0, w = _initial(0, rank=rank, task_seed=task_seed)
            expected = linear.kernel_alignment(M0, w)
            simulated = float(averaged.kernel_alignment.sel(rank=rank, task_seed=task_seed)
                              .isel(step=-1))
            assert simulated == pytest.approx(expected, abs=1e-6), (rank, task_seed)


def test_task_averaged_alignment_matches_theory_and_rises_strictly_with_rank(averaged, x64):
    """E[KA] over 200 tasks = (1 + 1/d) tr M0 / (sqrt(d+3) ||M0||) to 0.002, and rises strictly
    with the rank of W1(0) (Theorem 1: higher effective rank, lazier)."""
    simulated = averaged.kernel_alignment.isel(step=-1).mean("task_seed").values
    theory = linear.rank_curve([1, 2, 5, 10, 20], seed=[0], d=20, h=50, sigma=1e-3)
    np.testing.assert_allclose(simulated, theory.kernel_alignment.sel(seed=0).values, atol=2e-3)
    assert np.all(np.diff(simulated) > 0), simulated
    assert np.all(np.diff(theory.participation_ratio.sel(seed=0).values) > 0)


def test_weight_change_does_not_depend_on_rank(averaged):
    """The end weights are balanced and rank-1 with ||W1||^2 + ||W2||^2 = 2 ||w||: the weight
    change tends to sqrt(2) for every rank (only the kernel alignment moves)."""
    change = averaged.weight_change.isel(step=-1).values
    np.testing.assert_allclose(change, np.sqrt(2.0), rtol=1e-3)


def test_aligned_init_keeps_rank_one_and_alignment_one(x64):
    """Prop. 1: W1 = sigma u b^T, W2 = sigma u^T stays of that form (rank 1) and KA = 1."""
    experiment = lazyrich.get_experiment("linear_rank")
    params = experiment.defaults(init="aligned", task_seed=3, **THEORY)
    state = experiment.init(jax.random.key(0), params)
    final, _ = jax.lax.scan(lambda s, _: (experiment.step(s, params), None), state, None,
                            length=THEORY["steps"])
    W1 = final["weights"]["W1"]
    assert int(lazyrich.effective_rank(W1, "hard", tol=1e-6)) == 1
    assert float(experiment.metrics(final, params)["loss"]) < 1e-20
    ds = lazyrich.sweep("linear_rank", init="aligned", task_seed=range(5), progress=False,
                        **THEORY)
    np.testing.assert_allclose(ds.kernel_alignment.values, 1.0, atol=1e-6)


def test_anisotropic_features_partial_init_approaches_one_and_random_stays_lower(x64):
    """z = F x with the top half of F's singular values kappa: the aligned init stays at KA = 1,
    the init aligned with the rank-d/2 truncation of F rises toward 1 as kappa grows, a random
    rank-1 init stays below it."""
    final = {}
    for init in ("aligned", "partial", "random"):
        ds = lazyrich.sweep("linear_rank", init=init, rank=1, kappa=[1.0, 4.0], lr=0.04,
                            task_seed=range(6), d=20, h=50, sigma=1e-3, steps=2000,
                            log_every=500, progress=False)
        assert float(ds.loss.isel(step=-1).max()) < 1e-12
        for kappa in (1.0, 4.0):
            final[init, kappa] = float(ds.kernel_alignment.sel(kappa=kappa).isel(step=-1).mean())
    assert final["aligned", 1.0] == pytest.approx(1.0, abs=1e-6)
    assert final["aligned", 4.0] == pytest.approx(1.0, abs=1e-6)
    assert final["partial", 4.0] > final["partial", 1.0]
    assert final["partial", 4.0] > 0.998
    for kappa in (1.0, 4.0):
        assert final["random", kappa] < final["partial", kappa] - 0.01


def test_feature_scales_and_task_direction():
    scales = np.asarray(linear_rank.feature_scales(3.0, 5))
    np.testing.assert_array_equal(scales, [3.0, 3.0, 1.0, 1.0, 1.0])
    w = np.asarray(linear_rank.task_direction(4, 6))
    assert np.linalg.norm(w) == pytest.approx(1.0, abs=1e-6)
    assert not np.allclose(w, np.asarray(linear_rank.task_direction(5, 6)))


@pytest.mark.parametrize("kwargs,fragments", [
    ({"rank": 0}, ["rank=0", ">= 1"]),
    ({"rank": [1, 21]}, ["rank=21", "[1, 20]"]),
    ({"d": 20, "h": 10, "rank": 15}, ["rank=15", "[1, 10]"]),
    ({"init": "partial", "h": 10, "rank": 5}, ["init='partial'", "h >= d"]),
    ({"init": "orthogonal"}, ["init='orthogonal'", "'aligned'"]),
])
def test_bad_input_is_refused_before_compiling(kwargs, fragments):
    with pytest.raises(ValueError) as info:
        lazyrich.sweep("linear_rank", progress=False, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
