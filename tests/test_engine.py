"""The shape of what `sweep` returns: axes, coordinates, attrs, diverged runs, saving."""

import json

import numpy as np
from conftest import TINY

import lazyrich


def test_sequences_make_axes_in_keyword_order_and_scalars_go_to_attrs():
    ds = lazyrich.sweep("grokking", seed=range(2), alpha=(0.5, 1.0, 2.0), eps=[0.1],
                        lr_scale=0.25, progress=False, **TINY)
    assert ds["train_loss"].dims == ("seed", "alpha", "eps", "step")
    assert ds["diverged"].dims == ("seed", "alpha", "eps")
    assert list(ds.alpha.values) == [0.5, 1.0, 2.0]
    assert list(ds.step.values) == list(range(0, TINY["steps"] + 1, TINY["log_every"]))
    assert "lr_scale" not in ds.dims and ds.attrs["lr_scale"] == 0.25
    np.testing.assert_allclose(ds.time.values, 0.25 * ds.step.values)
    config = json.loads(ds.attrs["config"])
    assert config["axes"]["alpha"] == [0.5, 1.0, 2.0]
    assert config["parameters"]["lr_scale"] == 0.25
    assert ds.attrs["jax_version"] and ds.attrs["lazyrich_version"] == lazyrich.__version__
    assert "kernel_test_loss" not in ds and "lin_train_loss" not in ds
    assert ds["train_loss"].attrs["description"]


def test_swept_time_scale_gives_a_two_dimensional_time_coordinate():
    ds = lazyrich.sweep("grokking", lr_scale=[0.1, 0.2], progress=False, **TINY)
    assert ds.time.dims == ("lr_scale", "step")
    np.testing.assert_allclose(ds.time.sel(lr_scale=0.2).values, 0.2 * ds.step.values)


def test_diverging_run_is_flagged_and_the_others_continue():
    """A learning rate far past stability makes one run diverge: it is flagged, its values
    become NaN from the first non-finite log on, and the stable runs are unaffected."""
    ds = lazyrich.sweep("grokking", lr_scale=[0.5, 1e4], alpha=[1.0, 2.0], progress=False,
                        **TINY)
    assert ds.diverged.sel(lr_scale=0.5).values.tolist() == [False, False]
    assert ds.diverged.sel(lr_scale=1e4).values.tolist() == [True, True]
    bad = ds.train_loss.sel(lr_scale=1e4, alpha=1.0).values
    first_nan = int(np.argmax(np.isnan(bad)))
    assert first_nan > 0 and np.all(np.isnan(bad[first_nan:]))
    assert np.all(np.isnan(ds.test_loss.sel(lr_scale=1e4, alpha=1.0).values[first_nan:]))
    good = ds.sel(lr_scale=0.5)
    assert np.all(np.isfinite(good.train_loss.values))
    without = lazyrich.sweep("grokking", lr_scale=[0.5], alpha=[1.0, 2.0], progress=False,
                             **TINY).sel(lr_scale=0.5)
    for var in ("train_loss", "test_loss", "alignment"):
        np.testing.assert_allclose(good[var], without[var], rtol=1e-6, err_msg=var)


def test_save_and_load_round_trip(tmp_path):
    ds = lazyrich.sweep("grokking", alpha=[1.0, 2.0], dynamics=["network", "moments"],
                        linearized=False, progress=False, **TINY)
    path = tmp_path / "run.nc"
    lazyrich.save(ds, path)
    back = lazyrich.load(path)
    assert back.identical(ds) or back.equals(ds)
    assert back.diverged.dtype == bool
    assert list(back.dynamics.values) == ["network", "moments"]
    assert lazyrich.config(back)["axes"]["dynamics"] == ["network", "moments"]


def test_progress_bar_reports_runs(capsys):
    lazyrich.sweep("grokking", alpha=[1.0, 2.0], chunk_size=1, progress=True, **TINY)
    err = capsys.readouterr().err
    assert "400/400" in err and "step/s" in err and "(2 runs)" in err


def test_experiments_lists_parameters_with_defaults_and_static_flags():
    catalogue = lazyrich.experiments()
    grokking = catalogue["grokking"]
    assert grokking["alpha"].static is False and grokking["alpha"].default == 1.0
    assert grokking["N"].static is True
    assert grokking["steps"].sweepable is False
    text = lazyrich.get_experiment("grokking").describe()
    assert "alpha" in text and "batched" in text and "static" in text
