"""Sweep stores: every finished chunk written at once to zarr, so a killed sweep resumes.

Layout of a store directory (zarr v3):
- one array per output, shaped (static points, batched runs, [step or ntk_step,] [own dims]),
  zarr-chunked as (1, chunk_size, ...): one engine chunk is exactly one zarr chunk, so writing a
  chunk never touches another chunk's bytes;
- `diverged` (static points, batched runs);
- root attributes: the sweep configuration (`config`, the same JSON as the Dataset's), the chunk
  size, the output specs, and the library versions;
- `_finished/<static point>_<chunk>`: an empty marker per finished chunk, created with an atomic
  `os.replace` *after* the chunk's arrays are written. A crash mid-write leaves no marker, so the
  chunk is recomputed on resume; a marker always means complete data.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from typing import Any

import numpy as np
import zarr

MARKERS = "_finished"


class StoreMismatch(ValueError):
    """The store at a path was made by a different sweep configuration."""


def _first_difference(stored: dict, requested: dict) -> str | None:
    """A sentence naming the first parameter or axis that differs, or None."""
    if stored.get("experiment") != requested.get("experiment"):
        return (f"experiment differs: the store has {stored.get('experiment')!r}, this call "
                f"asks for {requested.get('experiment')!r}")
    for section, noun in (("axes", "sweep axis"), ("parameters", "parameter")):
        old, new = stored.get(section, {}), requested.get(section, {})
        for name in list(new) + [k for k in old if k not in new]:
            if old.get(name) != new.get(name):
                return (f"{noun} {name!r} differs: the store has {old.get(name)!r}, this call "
                        f"asks for {new.get(name)!r}")
    for key in ("chunk_size", "dtype"):
        if stored.get(key) != requested.get(key):
            return (f"{key} differs: the store has {stored.get(key)!r}, this call asks for "
                    f"{requested.get(key)!r}")
    return None


class SweepStore:
    """A zarr store holding the flat (static point, run) results of one sweep.

    Args:
        path: directory of the store.
        description: the sweep's configuration plus `chunk_size` and `dtype` (JSON-able); a
            store is reused only when this matches exactly.
        shapes: output name -> full flat shape (static points, runs, ...).
        overwrite: replace a store made by another configuration instead of refusing it.
    """

    def __init__(self, path: str | os.PathLike, description: dict[str, Any],
                 shapes: dict[str, tuple[int, ...]], versions: dict[str, str],
                 overwrite: bool = False):
        self.path = os.fspath(path)
        self.chunk_size = int(description["chunk_size"])
        if os.path.exists(self.path):
            if not os.path.isdir(self.path):
                raise ValueError(f"store={self.path!r} exists and is not a directory")
            existing = self._read_description()
            difference = None if existing is None else _first_difference(existing, description)
            if existing is None or difference is not None:
                if not overwrite:
                    reason = difference or "it is not a lazyrich sweep store"
                    raise StoreMismatch(f"store={self.path!r} cannot be resumed: {reason}; pass "
                                        f"overwrite=True to replace it")
                shutil.rmtree(self.path)
        if not os.path.exists(self.path):
            self._create(description, shapes, versions)
        self.group = zarr.open_group(self.path, mode="r+")
        os.makedirs(os.path.join(self.path, MARKERS), exist_ok=True)

    def _read_description(self) -> dict | None:
        try:
            group = zarr.open_group(self.path, mode="r")
            return json.loads(group.attrs["lazyrich_store"])
        except (KeyError, ValueError, OSError, zarr.errors.BaseZarrError):
            return None

    def _create(self, description: dict, shapes: dict, versions: dict) -> None:
        try:
            group = zarr.open_group(self.path, mode="w")
        except OSError as error:
            raise ValueError(f"store={self.path!r} cannot be created: {error}") from None
        for name, shape in shapes.items():
            dtype = bool if name == "diverged" else description["dtype"]
            fill = False if name == "diverged" else np.nan
            chunks = (1, min(self.chunk_size, max(shape[1], 1)), *shape[2:])
            tail = tuple(f"{name}_dim_{i}" for i in range(len(shape) - 2))
            group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                               dimension_names=("static_point", "run", *tail))
        group.attrs["lazyrich_store"] = json.dumps(description)
        group.attrs.update(versions)

    def _marker(self, static_index: int, chunk_index: int) -> str:
        return os.path.join(self.path, MARKERS, f"{static_index}_{chunk_index}")

    def is_finished(self, static_index: int, chunk_index: int) -> bool:
        return os.path.exists(self._marker(static_index, chunk_index))

    def write_chunk(self, static_index: int, chunk_index: int,
                    values: dict[str, np.ndarray]) -> None:
        """Write one chunk's arrays (each (runs in chunk, ...)), then mark it finished."""
        start = chunk_index * self.chunk_size
        for name, value in values.items():
            self.group[name][static_index, start:start + len(value)] = value
        marker = self._marker(static_index, chunk_index)
        temporary = marker + ".tmp"
        with open(temporary, "w") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, marker)

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(name -> flat array, finished mask (static points, runs)) of what is stored."""
        _, arrays, finished = read_store(self.path)
        return arrays, finished


def read_store(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    """(description, name -> flat array, finished mask (static points, runs)) of a store."""
    description = stored_description(path)
    group = zarr.open_group(os.fspath(path), mode="r")
    with warnings.catch_warnings():  # the marker directory is not a zarr node
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        names = [name for name, _ in group.arrays()]
    arrays = {name: np.asarray(group[name][...]) for name in names}
    static_points, runs = arrays["diverged"].shape
    size = description["chunk_size"]
    finished = np.zeros((static_points, runs), dtype=bool)
    for static_index in range(static_points):
        for chunk_index in range(-(-runs // size)):
            marker = os.path.join(os.fspath(path), MARKERS, f"{static_index}_{chunk_index}")
            if os.path.exists(marker):
                finished[static_index, chunk_index * size:(chunk_index + 1) * size] = True
    return description, arrays, finished


def stored_description(path: str | os.PathLike) -> dict:
    """The description (configuration, chunk size, dtype) a store was made with."""
    try:
        group = zarr.open_group(os.fspath(path), mode="r")
        return json.loads(group.attrs["lazyrich_store"])
    except (KeyError, OSError, ValueError, zarr.errors.BaseZarrError):
        raise ValueError(f"path={os.fspath(path)!r} is not a lazyrich sweep store") from None
