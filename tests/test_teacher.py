"""The `teacher` experiment: batching, closed-form errors, centring, bad input."""

import numpy as np
import pytest

import lazyrich
from lazyrich.tasks.committee import pair_expectation

TINY = {"D": 40, "K": 2, "M": 3, "n_test": 4000, "steps": 200, "log_every": 50}


@pytest.mark.parametrize("options", [{}, {"full_batch": True, "P": 60, "activation": "relu"},
                                     {"centred": True, "batch_size": 4}])
def test_batched_run_equals_single_run_and_shapes(options):
    ds = lazyrich.sweep("teacher", output_scale=[0.5, 2.0], lr=[0.1, 0.3], seed=[0, 1],
                        progress=False, **TINY, **options)
    assert ds.Q.dims == ("output_scale", "lr", "seed", "step", "student", "other_student")
    assert ds.R.shape[-2:] == (3, 2) and ds.T.dims[-2:] == ("teacher", "other_teacher")
    np.testing.assert_allclose(ds.time, ds.step * options.get("batch_size", 1) / TINY["D"])
    alone = lazyrich.sweep("teacher", output_scale=2.0, lr=0.3, seed=1, progress=False,
                           **TINY, **options)
    for var in ("Q", "R", "generalisation_error", "test_loss"):
        np.testing.assert_allclose(ds[var].sel(output_scale=2.0, lr=0.3, seed=1),
                                   alone[var].squeeze(), rtol=1e-6, atol=1e-7, err_msg=var)
    assert not ds.diverged.any()


@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_closed_form_error_matches_the_large_test_set(activation):
    """The population error from the overlaps agrees with the 4000-example test loss within
    4 standard errors of the latter (checked on the final state of 4 runs)."""
    ds = lazyrich.sweep("teacher", seed=[0, 1, 2, 3], activation=activation, lr=0.2,
                        progress=False, **TINY).isel(step=-1)
    gap = np.abs(ds.generalisation_error - ds.test_loss).values
    assert np.all(gap < 4 * ds.test_loss.values * np.sqrt(2 / TINY["n_test"]) + 1e-4)


def test_pair_expectation_matches_monte_carlo():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 5))
    covariance = a @ a.T / 5
    u = rng.multivariate_normal(np.zeros(3), covariance, size=1_000_000)
    for name, g in [("relu", lambda z: np.maximum(z, 0)),
                    ("erf", lambda z: np.asarray(__import__("scipy").special.erf(z / np.sqrt(2))))]:
        exact = np.asarray(pair_expectation(covariance, name))
        sample = g(u)
        np.testing.assert_allclose(exact, sample.T @ sample / len(u), atol=5e-3)


def test_centred_student_starts_at_zero_error_of_the_teacher_alone():
    """With centring the student's output is 0 at step 0, so the error is (1/2) E f_teacher^2
    for every output scale."""
    ds = lazyrich.sweep("teacher", output_scale=[0.1, 10.0], centred=True, progress=False,
                        **TINY).isel(step=0)
    np.testing.assert_allclose(ds.generalisation_error.sel(output_scale=0.1),
                               ds.generalisation_error.sel(output_scale=10.0), rtol=1e-6)


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"activation": "tanh"}, ValueError, "activation='tanh'"),
    ({"K": 0}, ValueError, "K=0"),
    ({"lr": -1.0}, ValueError, "lr=-1.0"),
    ({"output_scale": "big"}, TypeError, "output_scale='big'"),
    ({"full_batch": 1}, TypeError, "full_batch=1"),
])
def test_bad_input(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        lazyrich.sweep("teacher", progress=False, **kwargs)
