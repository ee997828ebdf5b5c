"""The `modular` experiment (quadratic MLP and flax transformer) and its modular-addition data."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazyrich
from lazyrich.experiments.classification import grokking_delay
from lazyrich.experiments.modular import network_output
from lazyrich.tasks.modular import (
    all_pairs,
    one_hot_pairs,
    random_split,
    token_sequences,
    train_size,
)

MLP = {"p": 7, "width": 16, "steps": 40, "log_every": 20}
TRANSFORMER = {"model": "transformer", "p": 5, "width": 8, "heads": 2, "activation": "relu",
               "loss": "cross_entropy", "lr": 0.05, "steps": 20, "log_every": 10}
CURVES = ["train_loss", "test_loss", "train_accuracy", "test_accuracy", "param_movement",
          "weight_norm"]


def test_pairs_split_and_encodings_match_loops():
    """all_pairs is every (a, b) with (a + b) mod p; a split is a partition of them; one-hot
    and token encodings are the obvious ones."""
    p = 5
    a, b, y = all_pairs(p)
    assert list(zip(a, b, y, strict=True)) == [(i, j, (i + j) % p)
                                               for i, j in itertools.product(range(p), repeat=2)]
    assert train_size(23, 0.9) == 476 and train_size(p, 0.5) == 12
    split = random_split(jax.random.key(0), p, 12)
    train = set(zip(np.asarray(split["a_train"]).tolist(), np.asarray(split["b_train"]).tolist(),
                    strict=True))
    test = set(zip(np.asarray(split["a_test"]).tolist(), np.asarray(split["b_test"]).tolist(),
                   strict=True))
    assert len(train) == 12 and len(test) == 13 and not train & test
    assert train | test == set(itertools.product(range(p), repeat=2))
    np.testing.assert_array_equal(split["y_train"], (split["a_train"] + split["b_train"]) % p)
    x = np.asarray(one_hot_pairs(jnp.array([1, 4]), jnp.array([0, 2]), p))
    assert x.shape == (2, 10) and x.sum() == 4 and x[0, 1] == x[0, 5] == x[1, 4] == x[1, 7] == 1
    np.testing.assert_array_equal(token_sequences(jnp.array([1, 4]), jnp.array([0, 2]), p),
                                  [[1, 0, 5], [4, 2, 5]])


def test_mlp_output_matches_the_notebook_formula():
    """f = scale W2 (W1 x)^2 / (D N), float64 numpy, to 1e-5."""
    rng = np.random.default_rng(0)
    p, width = 6, 10
    w1, w2 = rng.normal(size=(width, 2 * p)), rng.normal(size=(p, width))
    x = np.asarray(one_hot_pairs(jnp.array([0, 3, 5]), jnp.array([2, 2, 1]), p), np.float64)
    params = {"model": "mlp", "activation": "quadratic", "scale": 2.5}
    weights = {"W1": jnp.asarray(w1, jnp.float32), "W2": jnp.asarray(w2, jnp.float32)}
    expected = 2.5 * (x @ w1.T) ** 2 @ w2.T / (2 * p * width)
    np.testing.assert_allclose(network_output(weights, jnp.asarray(x, jnp.float32), params),
                               expected, rtol=1e-5, atol=1e-7)


def _assert_same_run(swept, alone, rtol):
    for var in CURVES:
        np.testing.assert_allclose(swept[var].values, alone[var].squeeze(drop=True).values,
                                   rtol=rtol, atol=rtol * float(np.abs(alone[var]).max()),
                                   err_msg=var)


def _grid(options):
    """A (scale x seed) sweep, checked for shapes, accuracies in [0, 1] and a falling loss."""
    ds = lazyrich.sweep("modular", scale=[0.5, 2.0], seed=[0, 1], progress=False, **options)
    n_log = options["steps"] // options["log_every"] + 1
    assert ds.test_accuracy.dims == ("scale", "seed", "step")
    assert ds.test_accuracy.shape == (2, 2, n_log) and ds.train_loss.dtype == jnp.result_type(float)
    for var in ("train_accuracy", "test_accuracy"):
        assert float(ds[var].min()) >= 0 and float(ds[var].max()) <= 1
    assert not ds.diverged.any()
    assert bool((ds.train_loss.isel(step=-1) < ds.train_loss.isel(step=0)).all())
    np.testing.assert_allclose(ds.weight_norm.isel(step=0), 1, rtol=1e-6)
    return ds


@pytest.mark.parametrize("options", [
    MLP, pytest.param(TRANSFORMER, marks=pytest.mark.slow)], ids=["mlp", "transformer"])
def test_batched_run_equals_single_run_shapes_and_ranges(options):
    """float32: a run in a (scale x seed) grid equals it alone to 1e-6."""
    ds = _grid(options)
    alone = lazyrich.sweep("modular", scale=2.0, seed=1, progress=False, **options)
    _assert_same_run(ds.sel(scale=2.0, seed=1), alone, rtol=1e-6)


def test_transformer_sweeps_over_scale_and_seed():
    """The flax transformer, split into pure functions, runs vmapped over scale x seed (its
    batched == alone check is the slow case above)."""
    _grid(TRANSFORMER)


def test_centred_model_starts_at_zero_output():
    """Centred, f = 0 at step 0 for every scale: the MSE is mean(one_hot^2) = 1/p."""
    ds = lazyrich.sweep("modular", scale=[0.5, 4.0], centred=True, progress=False,
                        **MLP).isel(step=0)
    np.testing.assert_allclose(ds.train_loss, 1 / MLP["p"], rtol=1e-6)
    np.testing.assert_allclose(ds.test_loss, 1 / MLP["p"], rtol=1e-6)


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"p": 1}, ValueError, "p=1"),
    ({"train_fraction": 1.0}, ValueError, "train_fraction=1.0"),
    ({"train_fraction": 0.0}, ValueError, "train_fraction=0.0"),
    ({"train_fraction": 0.01, "p": 5}, ValueError, "both the train and the test set"),
    ({"model": "transformer", "width": 8, "heads": 3}, ValueError, "heads=3"),
    ({"activation": "tanh"}, ValueError, "activation='tanh'"),
    ({"model": "rnn"}, ValueError, "model='rnn'"),
    ({"weight_decay": 1.5}, ValueError, "weight_decay=1.5"),
])
def test_bad_input(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        lazyrich.sweep("modular", progress=False, **kwargs)


def test_larger_scale_delays_test_accuracy():
    """p = 13, lr = 300: at scale 1.5 test accuracy reaches 90% of its final value >= 800 steps
    (measured 1700) after train accuracy; at scale 0.25 within 300 steps (measured 100); both
    fit the training set."""
    ds = lazyrich.sweep("modular", scale=[0.25, 1.5], p=13, lr=300.0, steps=3000,
                        log_every=100, progress=False)
    delay = grokking_delay(ds)
    assert float(delay.sel(scale=0.25)) <= 300
    assert float(delay.sel(scale=1.5)) >= 800
    assert float(ds.train_accuracy.isel(step=-1).min()) == 1.0
