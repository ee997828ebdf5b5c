"""Grokking half times and delays (lazyrich.metrics.grokking_times) on curves with known answers."""

import numpy as np
import pytest
import xarray as xr

from lazyrich.measures.grokking_times import grokking_times, half_time

TIMES = np.linspace(0.0, 100.0, 1001)


def _sigmoid_drop(t_mid, top=3.0, bottom=0.0, width=2.0):
    """A loss falling from `top` to `bottom`, half way (exactly) at t_mid."""
    return bottom + (top - bottom) / (1.0 + np.exp((TIMES - t_mid) / width))


def test_half_time_of_a_logistic_drop_is_its_midpoint():
    curve = _sigmoid_drop(40.0, top=3.0, bottom=0.0, width=1.0)
    assert half_time(curve, TIMES, floor=0.0) == pytest.approx(40.0, abs=0.02)
    # floor = last value: the level is half way between top and the last value
    assert half_time(curve, TIMES) == pytest.approx(40.0, abs=0.02)


def test_half_time_starts_after_the_plateau_maximum():
    """A test loss that first rises to a plateau, then groks: the half time is measured from
    the maximum, not from the initial value (which is already below half the maximum)."""
    rise = 4.0 * (1 - np.exp(-TIMES / 3.0))
    curve = np.where(TIMES < 60, rise, 4.0 / (1 + np.exp((TIMES - 70.0) / 1.0)) * (1 + 1e-9))
    assert half_time(curve, TIMES, floor=0.0) == pytest.approx(70.0, abs=0.05)


def test_curves_that_never_grok_give_nan_not_noise():
    rng = np.random.default_rng(0)
    flat = 3.0 + 0.05 * rng.standard_normal(TIMES.size)          # lazy plateau with noise
    partial = _sigmoid_drop(50.0, top=3.0, bottom=2.0)            # falls by only a third
    diverged = _sigmoid_drop(50.0)
    diverged[-3] = np.nan
    for curve in (flat, partial, diverged):
        assert np.isnan(half_time(curve, TIMES))


def test_interpolation_between_log_points():
    times = np.array([0.0, 10.0, 20.0])
    # level 1.0 (top 2, floor 0) is crossed a quarter of the way from t=10 to t=20
    assert half_time(np.array([2.0, 1.2, 0.4]), times, floor=0.0) == pytest.approx(12.5)


def test_dataarray_and_dataset_delay():
    train = np.stack([_sigmoid_drop(20.0), _sigmoid_drop(30.0)])
    test = np.stack([_sigmoid_drop(50.0), 3.0 + 0 * TIMES])
    coords = {"alpha": [1.0, 8.0], "step": np.arange(TIMES.size), "time": ("step", TIMES)}
    ds = xr.Dataset({"train_loss": (("alpha", "step"), train),
                     "test_loss": (("alpha", "step"), test)}, coords=coords)
    out = grokking_times(ds)
    np.testing.assert_allclose(out.t_half_train.values, [20.0, 30.0], atol=0.05)
    assert out.t_half_test.sel(alpha=1.0) == pytest.approx(50.0, abs=0.05)
    assert out.delay.sel(alpha=1.0) == pytest.approx(30.0, abs=0.1)
    assert np.isnan(out.delay.sel(alpha=8.0))       # the lazy run never groks its test loss
    assert out.t_half_test.dims == ("alpha",)


def test_each_run_uses_its_own_time_axis():
    """time = step x lr_scale with lr_scale swept (a 2-D time coordinate): the same curve in
    steps has half times scaled by each run's lr_scale."""
    steps = np.arange(TIMES.size)
    lr_scale = np.array([0.5, 2.0])
    curve = np.broadcast_to(_sigmoid_drop(40.0), (2, TIMES.size))   # half way at step 400
    da = xr.DataArray(curve, dims=("lr_scale", "step"),
                      coords={"lr_scale": lr_scale, "step": steps,
                              "time": (("lr_scale", "step"), lr_scale[:, None] * steps)})
    np.testing.assert_allclose(half_time(da, floor=0.0).values, [200.0, 800.0], rtol=1e-3)


def test_bad_input_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="min_drop_fraction"):
        half_time(_sigmoid_drop(5.0), TIMES, min_drop_fraction=1.5)
    with pytest.raises(ValueError, match="times"):
        half_time(_sigmoid_drop(5.0), TIMES[:-1])
    with pytest.raises(ValueError, match="time dimension"):
        half_time(xr.DataArray(np.ones(3), dims=["x"]))
    with pytest.raises(ValueError, match="not in the Dataset"):
        grokking_times(xr.Dataset({"train_loss": ("time", np.ones(3))}))
