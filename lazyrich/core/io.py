"""Saving and loading sweep results as netCDF (HDF5 via h5netcdf), with their configuration."""

from __future__ import annotations

import json
import os
from typing import Any

import xarray as xr

NETCDF_ENGINE = "h5netcdf"


def check_path_type(path: Any, name: str, what: str) -> None:
    """TypeError naming `name` unless `path` is a str or os.PathLike; `what` says what it
    should point to ("a file path", "the directory of a sweep store")."""
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{name}={path!r} has type {type(path).__name__}; {name} must be {what} "
                        f"(str or os.PathLike)")


def check_output_path(path: Any, name: str = "path", suffixes: tuple[str, ...] = (".nc",)) -> str:
    """`path` as a string if a file can be written there, else a ValueError / TypeError naming
    `name`: the folder must exist and be writable, the path must not be a folder, and its suffix
    must be one of `suffixes`. Nothing is created."""
    check_path_type(path, name, "a file path")
    text = os.fspath(path)
    if not text or os.path.isdir(text):
        raise ValueError(f"{name}={text!r} is a directory; {name} must be a file path")
    if not text.lower().endswith(suffixes):
        raise ValueError(f"{name}={text!r} has the wrong suffix; {name} must end with one of "
                         f"{list(suffixes)}")
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise ValueError(f"{name}={text!r} cannot be written: {folder!r} is not an existing "
                         f"directory")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{name}={text!r} cannot be written: {folder!r} is not writable")
    return text


def save(ds: xr.Dataset, path: str | os.PathLike) -> None:
    """Write a sweep result to a netCDF file (coordinates, attributes and `diverged` kept).

    The file is written beside its final name and moved into place, so an interrupted save
    never leaves a truncated file under that name.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds has type {type(ds).__name__}; save takes the xarray.Dataset "
                        f"returned by lazyrich.sweep")
    path = check_output_path(path)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        ds.to_netcdf(temporary, engine=NETCDF_ENGINE)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a file written by `save` (or `lazyrich run --out`) fully into memory."""
    check_path_type(path, "path", "a file path")
    if not os.path.exists(path):
        raise ValueError(f"path={str(path)!r} does not exist; give a netCDF file written by "
                         f"lazyrich.save or `lazyrich run --out`")
    if os.path.isdir(path):
        raise ValueError(f"path={str(path)!r} is a directory; for a sweep store use "
                         f"lazyrich.open(path)")
    try:
        return xr.load_dataset(path, engine=NETCDF_ENGINE)
    except (OSError, ValueError) as error:
        raise ValueError(f"path={str(path)!r} is not a netCDF file written by "
                         f"lazyrich.save ({type(error).__name__}: {error})") from None


def config(ds: xr.Dataset) -> dict[str, Any]:
    """The sweep configuration stored in a result: experiment, axes and scalar parameters."""
    if "config" not in ds.attrs:
        raise ValueError("this Dataset has no 'config' attribute; it was not made by "
                         "lazyrich.sweep")
    return json.loads(ds.attrs["config"])
