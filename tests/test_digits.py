"""The `digits` experiment, its losses and optimiser step, and the MNIST loader on written files."""

import gzip
import os

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import lazyrich
from lazyrich.experiments import classification
from lazyrich.experiments.digits import image_experiment, network_output
from lazyrich.tasks.digits import image_dataset, load_digits, load_mnist, read_idx

TINY = {"width": 32, "n_train": 60, "n_test": 200, "steps": 60, "log_every": 20}
CURVES = ["train_loss", "test_loss", "train_accuracy", "test_accuracy", "param_movement"]


def _assert_same_run(swept, alone, rtol):
    for var in CURVES:
        np.testing.assert_allclose(swept[var].values, alone[var].squeeze(drop=True).values,
                                   rtol=rtol, atol=rtol * float(np.abs(alone[var]).max()),
                                   err_msg=var)


@pytest.mark.parametrize("options", [
    {},
    pytest.param({"loss": "cross_entropy", "depth": 2, "optimizer": "adam", "lr": 0.01,
                  "weight_decay": 1e-3, "centred": True, "activation": "tanh"},
                 marks=pytest.mark.slow),
])
def test_batched_run_equals_single_run_shapes_and_ranges(options):
    """float32: a run in a (output_scale x init_scale x seed) grid equals it alone to 1e-6."""
    ds = lazyrich.sweep("digits", output_scale=[1.0, 10.0], init_scale=[0.5, 1.0], seed=[0, 1],
                        progress=False, **TINY, **options)
    assert ds.train_accuracy.dims == ("output_scale", "init_scale", "seed", "step")
    assert list(ds.step.values) == [0, 20, 40, 60] and ds.train_loss.dtype == jnp.result_type(float)
    for var in ("train_accuracy", "test_accuracy"):
        assert float(ds[var].min()) >= 0 and float(ds[var].max()) <= 1
    assert not ds.diverged.any()
    point = {"output_scale": 10.0, "init_scale": 0.5, "seed": 1}
    alone = lazyrich.sweep("digits", progress=False, **point, **TINY, **options)
    _assert_same_run(ds.sel(point), alone, rtol=1e-6)


def test_init_scale_equals_output_scale_for_relu():
    """ReLU is homogeneous: init scale 2 at depth 2 gives the run of output scale 2^3 = 8
    (to 1e-5), with weight decay too."""
    ds = lazyrich.sweep("digits", output_scale=[1.0, 8.0], init_scale=[1.0, 2.0], depth=2,
                        weight_decay=1e-3, progress=False, **TINY)
    _assert_same_run(ds.sel(output_scale=1.0, init_scale=2.0),
                     ds.sel(output_scale=8.0, init_scale=1.0), rtol=1e-5)


def test_network_output_matches_numpy():
    """alpha W_out relu(W_2 relu(W_1 x / sqrt d) / sqrt N) / N, float64 numpy, to 1e-5."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 64))
    w1, w2, w_out = rng.normal(size=(16, 64)), rng.normal(size=(16, 16)), rng.normal(size=(10, 16))
    params = {"activation": "relu", "output_scale": 3.0}
    weights = {"hidden": (jnp.asarray(w1, jnp.float32), jnp.asarray(w2, jnp.float32)),
               "readout": jnp.asarray(w_out, jnp.float32)}
    h = np.maximum(np.maximum(x @ w1.T / 8, 0) @ w2.T / 4, 0)
    np.testing.assert_allclose(network_output(weights, jnp.asarray(x, jnp.float32), params),
                               3.0 * h @ w_out.T / 16, rtol=1e-5, atol=1e-6)


def test_losses_and_accuracy_match_numpy():
    rng = np.random.default_rng(1)
    outputs, labels = rng.normal(size=(9, 4)), rng.integers(0, 4, size=9)
    mse = np.mean((outputs - np.eye(4)[labels]) ** 2)
    shifted = outputs - outputs.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cross_entropy = -np.mean(log_softmax[np.arange(9), labels])
    f, y = jnp.asarray(outputs, jnp.float32), jnp.asarray(labels)
    np.testing.assert_allclose(classification.classification_loss(f, y, "mse"), mse, rtol=1e-6)
    np.testing.assert_allclose(classification.classification_loss(f, y, "cross_entropy"),
                               cross_entropy, rtol=1e-6)
    np.testing.assert_allclose(classification.accuracy(f, y),
                               np.mean(outputs.argmax(1) == labels), rtol=1e-7)
    with pytest.raises(ValueError, match="loss='hinge'"):
        classification.classification_loss(f, y, "hinge")


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_optimizer_step_with_decoupled_weight_decay(kind):
    """On (1/2)|w - c|^2: SGD gives (1 - wd)(w - lr (w - c)); Adam's first step is
    (1 - wd)(w - lr sign(w - c)) (up to its epsilon)."""
    w, c = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.0, 1.0, 2.0])
    lr, decay = 0.1, 0.01
    transform = classification.optimizer(kind, lr)
    new, _ = classification.optimizer_step(lambda v: 0.5 * jnp.sum((v - c) ** 2), w,
                                           transform.init(w), transform, decay)
    direction = (w - c) if kind == "sgd" else jnp.sign(w - c)
    np.testing.assert_allclose(new, (1 - decay) * (w - lr * direction), rtol=1e-5)


def test_rise_step_and_delay_match_a_loop():
    rng = np.random.default_rng(2)
    curves = np.cumsum(rng.uniform(size=(3, 11)), axis=1)
    curves /= curves[:, -1:]
    steps = np.arange(11) * 50
    ds = xr.Dataset({"train_accuracy": (("run", "step"), curves ** 0.3),
                     "test_accuracy": (("run", "step"), curves ** 3)}, coords={"step": steps})
    for run in range(3):
        expected = [next(s for s, v in zip(steps, c, strict=True) if v >= 0.9 * c[-1])
                    for c in (curves[run] ** 3, curves[run] ** 0.3)]
        assert float(classification.grokking_delay(ds)[run]) == expected[0] - expected[1]
    ds["test_accuracy"][0] = np.nan
    assert np.isnan(classification.rise_step(ds.test_accuracy)[0])
    with pytest.raises(ValueError, match="fraction=0"):
        classification.rise_step(ds.test_accuracy, 0)


def test_digits_pool_is_standardised():
    pool = load_digits()
    assert pool.images.shape == (1797, 64) and pool.n_classes == 10
    np.testing.assert_allclose(pool.images.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(np.mean(pool.images.astype(np.float64) ** 2), 1, rtol=1e-5)


def _write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


@pytest.fixture
def mnist_like():
    rng = np.random.default_rng(3)
    return {"x_train": rng.integers(0, 256, size=(12, 5, 4), dtype=np.uint8),
            "y_train": rng.integers(0, 3, size=12).astype(np.uint8),
            "x_test": rng.integers(0, 256, size=(6, 5, 4), dtype=np.uint8),
            "y_test": np.array([0, 1, 2, 2, 1, 0], dtype=np.uint8)}


def _standardised(images):
    flat = images.reshape(len(images), -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    return centred / np.sqrt(np.mean(centred ** 2))


def test_mnist_loader_on_written_npz_and_idx_files(tmp_path, mnist_like):
    """.npz (Keras layout, and images/labels) and idx files (plain and gzipped) give the same
    standardised pool as numpy."""
    npz = str(tmp_path / "mnist.npz")
    np.savez(npz, **mnist_like)
    both = load_mnist(npz)
    images = np.concatenate([mnist_like["x_train"], mnist_like["x_test"]])
    np.testing.assert_allclose(both.images, _standardised(images), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(both.labels, np.concatenate([mnist_like["y_train"],
                                                               mnist_like["y_test"]]))
    assert both.n_classes == 3 and both.images.shape == (18, 20)
    test_only = load_mnist(npz, split="test")
    np.testing.assert_allclose(test_only.images, _standardised(mnist_like["x_test"]), rtol=1e-5,
                               atol=1e-6)
    flat = str(tmp_path / "flat.npz")
    np.savez(flat, images=mnist_like["x_train"], labels=mnist_like["y_train"])
    np.testing.assert_allclose(load_mnist(flat).images, _standardised(mnist_like["x_train"]),
                               rtol=1e-5, atol=1e-6)

    directory = tmp_path / "idx"
    directory.mkdir()
    _write_idx(str(directory / "train-images-idx3-ubyte.gz"), mnist_like["x_train"])
    _write_idx(str(directory / "train-labels-idx1-ubyte"), mnist_like["y_train"])
    _write_idx(str(directory / "t10k-images-idx3-ubyte"), mnist_like["x_test"])
    _write_idx(str(directory / "t10k-labels-idx1-ubyte.gz"), mnist_like["y_test"])
    from_idx = load_mnist(directory)
    np.testing.assert_array_equal(from_idx.images, both.images)
    np.testing.assert_array_equal(from_idx.labels, both.labels)
    wide = np.arange(6, dtype=">i4").reshape(2, 3)
    _write_idx(str(tmp_path / "wide.idx"), wide)
    np.testing.assert_array_equal(read_idx(tmp_path / "wide.idx"), wide)


def test_mnist_loader_refuses_bad_files(tmp_path, mnist_like):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(bad)
    short = str(tmp_path / "short.idx")
    _write_idx(short, mnist_like["y_train"])
    with open(short, "ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(short)
    train_only = str(tmp_path / "train.npz")
    np.savez(train_only, x_train=mnist_like["x_train"], y_train=mnist_like["y_train"])
    with pytest.raises(ValueError, match="has no test images"):
        load_mnist(train_only, split="test")
    with pytest.raises(ValueError, match="split='valid'"):
        load_mnist(train_only, split="valid")
    wrong = str(tmp_path / "wrong.npz")
    np.savez(wrong, pixels=mnist_like["x_train"])
    with pytest.raises(ValueError, match="x_train"):
        load_mnist(wrong)
    with pytest.raises(ValueError, match="neither a .npz"):
        load_mnist(os.fspath(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="one label per image"):
        image_dataset(mnist_like["x_train"], mnist_like["y_train"][:5])


def test_image_experiment_runs_on_a_loaded_file(tmp_path, mnist_like):
    npz = str(tmp_path / "mnist.npz")
    np.savez(npz, **mnist_like)
    experiment = image_experiment(lambda: load_mnist(npz), "my_mnist")
    ds = lazyrich.sweep(experiment, output_scale=[1.0, 2.0], width=8, n_train=10, n_test=8,
                        steps=20, log_every=10, progress=False)
    assert ds.test_accuracy.shape == (2, 3) and ds.attrs["experiment"] == "my_mnist"
    with pytest.raises(ValueError, match="exceeds the 18 images"):
        lazyrich.sweep(experiment, n_train=10, n_test=9, progress=False)


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"n_train": 1500, "n_test": 500}, ValueError, "n_train=1500"),
    ({"weight_decay": [0.0, 1.0]}, ValueError, "weight_decay=1.0"),
    ({"loss": "hinge"}, ValueError, "loss='hinge'"),
    ({"activation": "sigmoid"}, ValueError, "activation='sigmoid'"),
    ({"width": 0}, ValueError, "width=0"),
    ({"output_scale": "big"}, TypeError, "output_scale='big'"),
])
def test_bad_input(kwargs, error, fragment):
    with pytest.raises(error, match=fragment):
        lazyrich.sweep("digits", progress=False, **kwargs)


def test_larger_output_scale_delays_test_accuracy():
    """Not centred: at output scale 10 test accuracy reaches 90% of its final value >= 80
    steps (mean of 2 seeds; measured 140) after train accuracy does; at output scale 1 within
    40 steps (measured 0); both fit the training set."""
    ds = lazyrich.sweep("digits", output_scale=[1.0, 10.0], seed=[0, 1], width=128,
                        n_train=200, n_test=500, steps=2400, log_every=40, progress=False)
    delay = classification.grokking_delay(ds).mean("seed")
    assert float(delay.sel(output_scale=1.0)) <= 40
    assert float(delay.sel(output_scale=10.0)) >= 80
    assert float(ds.train_accuracy.isel(step=-1).min()) >= 0.95
