"""Grokking time and train-to-test delay of learning curves (issue 15).

Definitions (used everywhere in lazyrich: `lazyrich phase`, the closed form in
`dmft.grokking_scaling`, the gallery):

- The *top* of a curve L(t) is its largest value, L_top = max_t L(t), reached first at t_top
  (for a test loss this is the plateau maximum; a train loss usually starts at its top).
- Its *floor* is `floor` if given (e.g. 0: "half of the top"), otherwise its last value
  L(t_end) (the loss it reached within the run).
- The *half time* t_half is the first time after t_top at which the curve has made half of its
  drop from the top to the floor: L(t) <= L_floor + (L_top - L_floor) / 2, linearly
  interpolated between the two logged points that straddle that level (units of the `time`
  coordinate: step x lr_scale for the grokking model).
- A curve *groks* only if it falls to at most `min_drop_fraction` of its top:
  L(t_end) <= min_drop_fraction * L_top (default 0.5). A curve that does not (a lazy run whose
  test loss sits on its plateau, or a flat noisy curve) has t_half = NaN, never a number from
  noise; so has a curve with a non-finite value (a diverged run).
- t_half_train / t_half_test are the half times of the train / test loss; the *delay* is
  t_half_test - t_half_train (NaN if either is NaN).

Functions take a numpy array (time along `axis`, default the last) with its time points, or an
xarray DataArray with a `time` dimension (or `step`), and return the same type without that
dimension.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

TIME_DIMS = ("time", "step")


def _check_fraction(value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"min_drop_fraction must be in (0, 1) (the final loss as a fraction "
                         f"of the top that counts as grokked), got {value!r}")
    return value


def _half_time_1d(curve: np.ndarray, times: np.ndarray, floor: float | None,
                  min_drop_fraction: float) -> float:
    """Half time of one curve (shape (T,)) over times (shape (T,)); NaN if it never groks."""
    if not np.all(np.isfinite(curve)):
        return float("nan")
    top_index = int(np.argmax(curve))
    top = curve[top_index]
    if not curve[-1] <= min_drop_fraction * top or top <= 0:
        return float("nan")
    bottom = curve[-1] if floor is None else float(floor)
    level = bottom + 0.5 * (top - bottom)
    below = np.nonzero(curve[top_index:] <= level)[0]
    if below.size == 0:
        return float("nan")
    j = top_index + int(below[0])
    if j == top_index:
        return float(times[j])
    l0, l1 = curve[j - 1], curve[j]
    fraction = (l0 - level) / (l0 - l1)
    return float(times[j - 1] + fraction * (times[j] - times[j - 1]))


def _numpy_half_time(curves: np.ndarray, times: np.ndarray, axis: int, floor: float | None,
                     min_drop_fraction: float) -> np.ndarray:
    curves = np.moveaxis(np.asarray(curves, dtype=np.float64), axis, -1)
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.shape[0] != curves.shape[-1]:
        raise ValueError(f"times must be 1-D with one entry per logged point "
                         f"({curves.shape[-1]}), got shape {times.shape}")
    if curves.shape[-1] < 2:
        raise ValueError(f"a curve needs at least 2 logged points, got {curves.shape[-1]}")
    if np.any(np.diff(times) <= 0):
        raise ValueError("times must be strictly increasing")
    flat = curves.reshape(-1, curves.shape[-1])
    out = np.array([_half_time_1d(c, times, floor, min_drop_fraction) for c in flat])
    return out.reshape(curves.shape[:-1])


def _time_dim(curve: xr.DataArray) -> str:
    for dim in TIME_DIMS:
        if dim in curve.dims:
            return dim
    raise ValueError(f"curve has no time dimension: dims {curve.dims}, expected one of "
                     f"{TIME_DIMS}")


def half_time(curve, times=None, *, axis: int = -1, floor: float | None = None,
              min_drop_fraction: float = 0.5):
    """First time the curve has made half its drop from its top to its floor (module docstring).

    curve: an xarray DataArray with a `time` (or `step`) dimension, whose coordinate gives the
    times (`times` must then be None); or a numpy array (..., T) with `times` of shape (T,) (the
    time axis is `axis`). Returns a DataArray / array without the time dimension, NaN where the
    curve never groks (falls to no less than min_drop_fraction of its top) or is not finite.
    """
    min_drop_fraction = _check_fraction(min_drop_fraction)
    if floor is not None and not np.isfinite(floor):
        raise ValueError(f"floor must be a finite number or None, got {floor!r}")
    if isinstance(curve, xr.DataArray):
        if times is not None:
            raise ValueError("times must be None for a DataArray: its time coordinate is used")
        dim = _time_dim(curve)
        # `time` may depend on a swept parameter (time = step x lr_scale with lr_scale an
        # axis): then every run is measured on its own time axis
        coordinate = curve["time"] if "time" in curve.coords else curve[dim]
        if dim not in coordinate.dims:
            raise ValueError(f"the time coordinate has dims {coordinate.dims}, without {dim!r}")

        def one(values, times):
            return _numpy_half_time(values[None], times, -1, floor, min_drop_fraction)[0]

        result = xr.apply_ufunc(one, curve, coordinate.drop_vars(
            [c for c in coordinate.coords if c not in coordinate.dims]),
            input_core_dims=[[dim], [dim]], vectorize=True)
        return result.rename(f"t_half_{curve.name}" if curve.name else None)
    if times is None:
        raise ValueError("times is required for a numpy curve (one time per logged point)")
    return _numpy_half_time(curve, times, axis, floor, min_drop_fraction)


def grokking_times(ds: xr.Dataset, *, train: str = "train_loss", test: str = "test_loss",
                   floor: float | None = None, min_drop_fraction: float = 0.5) -> xr.Dataset:
    """t_half_train, t_half_test and delay = t_half_test - t_half_train of every run of `ds`.

    ds: a sweep result with `train` and `test` variables over `time` (or `step`). Returns a
    Dataset on the sweep's other dimensions (NaN where a curve never groks).
    """
    for name in (train, test):
        if name not in ds:
            raise ValueError(f"variable {name!r} is not in the Dataset (it has "
                             f"{sorted(ds.data_vars)})")
    kwargs = {"floor": floor, "min_drop_fraction": min_drop_fraction}
    t_train = half_time(ds[train], **kwargs)
    t_test = half_time(ds[test], **kwargs)
    out = xr.Dataset({"t_half_train": t_train, "t_half_test": t_test,
                      "delay": t_test - t_train})
    out["t_half_train"].attrs["long_name"] = f"half time of {train}"
    out["t_half_test"].attrs["long_name"] = f"half time of {test}"
    out["delay"].attrs["long_name"] = "t_half_test - t_half_train"
    return out
