"""Saving and loading sweep results as netCDF (HDF5 via h5netcdf), with their configuration."""

from __future__ import annotations

import json
import os
from typing import Any

import xarray as xr

NETCDF_ENGINE = "h5netcdf"


def save(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a sweep result to a netCDF file (coordinates, attributes and `diverged` kept)."""
    ds.to_netcdf(path, engine=NETCDF_ENGINE)


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a file written by `save` (or `lazyrich run --out`) fully into memory."""
    if not os.path.exists(path):
        raise ValueError(f"path={str(path)!r} does not exist; give a netCDF file written by "
                         f"lazyrich.save or `lazyrich run --out`")
    return xr.load_dataset(path, engine=NETCDF_ENGINE)


def config(ds: xr.Dataset) -> dict[str, Any]:
    """The sweep configuration stored in a result: experiment, axes and scalar parameters."""
    if "config" not in ds.attrs:
        raise ValueError("this Dataset has no 'config' attribute; it was not made by "
                         "lazyrich.sweep")
    return json.loads(ds.attrs["config"])
