"""Sweep stores: every finished chunk written at once to zarr, so a killed sweep resumes.

Layout of a store directory (zarr v3):
- one array per output, shaped (static points, batched runs, [step or ntk_step,] [own dims]),
  zarr-chunked as (1, chunk_size, ...): one engine chunk is exactly one zarr chunk, so writing a
  chunk never touches another chunk's bytes;
- `diverged` (static points, batched runs);
- root attributes: the sweep configuration (`config`, the same JSON as the Dataset's), the chunk
  size, the output specs, and the library versions;
- `_finished/<static point>_<chunk>`: a marker per finished chunk holding a checksum of each of
  the chunk's arrays as written, created with an atomic `os.replace` *after* the arrays are
  written. A crash mid-write leaves no marker, so the chunk is recomputed on resume.
- `<store>.lock` beside the store: a file lock held by the process writing the store.

A marker implies readable data: opening or resuming a store re-reads every finished chunk and
compares it with its checksum, so a truncated or deleted chunk file, or a deleted variable,
marks that chunk's runs damaged (named in a `StoreDamageWarning`); `lazyrich.open` shows them as
unfinished (NaN) and a resuming sweep recomputes them. Two processes sweeping into one store take
turns: the second waits for the first's lock, then finds its chunks finished and reuses them.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from lazyrich.core.locks import held_lock


def _zarr():  # imported on first use: ~0.1 s that a sweep storing nothing never pays
    import zarr
    return zarr


MARKERS = "_finished"


class StoreDamageWarning(UserWarning):
    """Finished chunks of a store could not be read back as written (they are recomputed)."""


@contextlib.contextmanager
def store_lock(path: str | os.PathLike | None) -> Iterator[None]:
    """Hold `<path>.lock` while a sweep writes the store at `path` (no-op for None).

    A second writer waits, saying so, until the first finishes (or is killed: the operating
    system releases the lock of a dead process), then resumes from what the first wrote.
    """
    if path is None:
        yield
        return
    lock_path = os.path.abspath(os.fspath(path)).rstrip(os.sep) + ".lock"
    parent = os.path.dirname(lock_path)
    if not os.path.isdir(parent):
        raise ValueError(f"store={os.fspath(path)!r} cannot be created: {parent!r} is not an "
                         f"existing directory")
    with held_lock(lock_path, f"store={os.fspath(path)!r}",
                   f"store={os.fspath(path)!r} is being written by another process; waiting "
                   f"for it to finish, then resuming from its chunks"):
        yield


def _checksum(values: np.ndarray) -> str:
    values = np.ascontiguousarray(values)
    digest = hashlib.sha256(str(values.dtype).encode() + str(values.shape).encode())
    digest.update(values.tobytes())
    return digest.hexdigest()


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
            if old.get(name) != new.get(name) and not _same_values(old.get(name), new.get(name)):
                return (f"{noun} {name!r} differs: the store has {old.get(name)!r}, this call "
                        f"asks for {new.get(name)!r}")
    for key, default in (("chunk_size", None), ("dtype", None), ("matmul_precision", "float32")):
        if stored.get(key, default) != requested.get(key, default):
            return (f"{key} differs: the store has {stored.get(key, default)!r}, this call "
                    f"asks for {requested.get(key, default)!r}")
    return None


def _same_values(old: Any, new: Any) -> bool:
    """Two sweep axes with the same values in another order hold the same runs."""
    if not isinstance(old, list) or not isinstance(new, list) or len(old) != len(new):
        return False
    try:
        return set(old) == set(new)
    except TypeError:
        return False


def same_runs(stored: dict, requested: dict) -> bool:
    """True when a store's configuration holds exactly the requested runs, whatever the order of
    the axes or of their values (stores key runs by values, not positions)."""
    if stored.get("experiment") != requested.get("experiment"):
        return False
    if stored.get("parameters") != requested.get("parameters"):
        return False
    old, new = stored.get("axes", {}), requested.get("axes", {})
    return set(old) == set(new) and all(_same_values(old[k], new[k]) for k in new)


def check_resumable(path: str, description: dict, overwrite: bool) -> None:
    """Refuse, before any work, a path that is not a store or a store of another sweep.

    `description` is the sweep's configuration and dtype (the chunk size is checked when the
    store opens, once it is known).
    """
    if not os.path.isdir(path) or not os.listdir(path):
        return
    try:
        existing = stored_description(path)
    except ValueError:
        raise StoreMismatch(f"store={path!r} cannot be used: it is a directory that is not a "
                            f"lazyrich sweep store; choose another path") from None
    difference = _first_difference(existing, {**description,
                                              "chunk_size": existing.get("chunk_size")})
    if difference is not None and not overwrite:
        raise StoreMismatch(f"store={path!r} cannot be resumed: {difference}; choose another "
                            f"path, or pass overwrite=True (`--overwrite` on the command "
                            f"line) to delete its finished runs and start again")


class SweepStore:
    """A zarr store holding the flat (static point, run) results of one sweep: `path` its
    directory; `description` the sweep's configuration plus `chunk_size` and `dtype` (JSON-able;
    a store is reused only when it matches exactly); `shapes` output name -> full flat shape
    (static points, runs, ...); `overwrite`: replace a store made by another configuration
    instead of refusing it; `versions` the library versions, kept in the store's attributes."""

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
            if existing is None and os.listdir(self.path):
                raise StoreMismatch(f"store={self.path!r} cannot be used: it is a directory that "
                                    f"is not a lazyrich sweep store; choose another path")
            if existing is not None and difference is not None:
                if not overwrite:
                    raise StoreMismatch(f"store={self.path!r} cannot be resumed: {difference}; "
                                        f"choose another path, or pass overwrite=True "
                                        f"(`--overwrite` on the command line) to delete its "
                                        f"finished runs and start again")
                shutil.rmtree(self.path)
            elif existing is None:
                os.rmdir(self.path)  # an empty directory: nothing to lose
        if not os.path.exists(self.path):
            self._create(description, shapes, versions)
        self.group = _zarr().open_group(self.path, mode="r+")
        os.makedirs(os.path.join(self.path, MARKERS), exist_ok=True)
        self._repair(description, shapes)

    def _read_description(self) -> dict | None:
        try:
            group = _zarr().open_group(self.path, mode="r")
            return json.loads(group.attrs["lazyrich_store"])
        except (KeyError, ValueError, OSError, _zarr().errors.BaseZarrError):
            return None

    def _create(self, description: dict, shapes: dict, versions: dict) -> None:
        """Build the store in a temporary directory, then move it into place at once, so no
        reader ever sees a half-made store."""
        temporary = f"{self.path}.creating-{os.getpid()}"
        try:
            group = _zarr().open_group(temporary, mode="w")
        except OSError as error:
            raise ValueError(f"store={self.path!r} cannot be created: {error}") from None
        for name, shape in shapes.items():
            self._create_array(group, name, shape, description["dtype"])
        group.attrs["lazyrich_store"] = json.dumps({**description, "shapes": {
            name: list(shape) for name, shape in shapes.items()}})
        group.attrs.update(versions)
        os.makedirs(os.path.join(temporary, MARKERS), exist_ok=True)
        os.replace(temporary, self.path)

    def _create_array(self, group, name: str, shape: tuple, dtype: str) -> None:
        dtype = bool if name == "diverged" else dtype
        fill = False if name == "diverged" else np.nan
        chunks = (1, min(self.chunk_size, max(shape[1], 1)), *shape[2:])
        tail = tuple(f"{name}_dim_{i}" for i in range(len(shape) - 2))
        group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                           dimension_names=("static_point", "run", *tail), overwrite=True)

    def _repair(self, description: dict, shapes: dict) -> None:
        """Recreate missing variables and unmark damaged chunks, so a resume recomputes them."""
        names = _array_names(self.group)
        for name, shape in shapes.items():
            if name not in names:
                self._create_array(self.group, name, tuple(shape), description["dtype"])
        stored = {**description, "shapes": {k: list(v) for k, v in shapes.items()}}
        damaged = verify_chunks(self.path, stored)
        for static_index, chunk_index, _ in damaged:
            os.remove(self._marker(static_index, chunk_index))
        if damaged:
            warnings.warn(damage_report(self.path, stored, damaged, "recomputing them"),
                          StoreDamageWarning, stacklevel=4)

    def _marker(self, static_index: int, chunk_index: int) -> str:
        return os.path.join(self.path, MARKERS, f"{static_index}_{chunk_index}")

    def is_finished(self, static_index: int, chunk_index: int) -> bool:
        return os.path.exists(self._marker(static_index, chunk_index))

    def write_chunk(self, static_index: int, chunk_index: int,
                    values: dict[str, np.ndarray]) -> None:
        """Write one chunk's arrays (each (runs in chunk, ...)), then mark it finished."""
        start = chunk_index * self.chunk_size
        checksums = {}
        for name, value in values.items():
            array = self.group[name]
            written = np.asarray(value, dtype=array.dtype)
            array[static_index, start:start + len(value)] = written
            checksums[name] = _checksum(written)
        marker = self._marker(static_index, chunk_index)
        temporary = f"{marker}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            json.dump(checksums, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, marker)

    def read(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """(name -> flat array, finished mask (static points, runs)) of what is stored."""
        _, arrays, finished = read_store(self.path)
        return arrays, finished


def _array_names(group) -> set[str]:
    with warnings.catch_warnings():  # the marker directory is not a zarr node
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        return {name for name, _ in group.arrays()}


def _chunks(description: dict) -> Iterator[tuple[int, int, slice]]:
    """(static point, chunk, run slice) of every chunk of a store."""
    static_points, runs = description["shapes"]["diverged"]
    size = description["chunk_size"]
    for static_index, chunk_index in itertools.product(range(static_points),
                                                       range(-(-runs // size))):
        yield static_index, chunk_index, slice(chunk_index * size,
                                               min((chunk_index + 1) * size, runs))


def _read_marker(path: str, static_index: int, chunk_index: int) -> dict | None:
    """The checksums a finished chunk's marker holds ({} for an old empty marker), or None."""
    marker = os.path.join(path, MARKERS, f"{static_index}_{chunk_index}")
    try:
        with open(marker) as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {"": "unreadable marker"}


def _chunk_state(path: str, group, names: set, shapes: dict, static_index: int,
                 chunk_index: int, runs: slice) -> tuple[bool, str | None, dict]:
    """(finished, why its data is damaged or None, name -> values) of one chunk."""
    checksums = _read_marker(path, static_index, chunk_index)
    if checksums is None:
        return False, None, {}
    if "" in checksums:
        return True, "its finished-marker is unreadable", {}
    missing = [name for name in shapes if name not in names]
    if missing:
        return True, f"variable {missing[0]!r} is missing", {}
    if not checksums:  # a marker written before checksums: damage = unreadable
        checksums = dict.fromkeys(shapes)
    values = {}
    for name, expected in checksums.items():
        try:
            values[name] = np.asarray(group[name][static_index, runs])
        except Exception as error:  # noqa: BLE001 - any codec / IO failure means damage
            return True, f"variable {name!r} cannot be read ({type(error).__name__}: " \
                f"{error})", {}
        if expected is not None and _checksum(values[name]) != expected:
            return True, f"variable {name!r} does not match what was written", {}
    return True, None, values


def _scan(path: str | os.PathLike, description: dict):
    """Yield (static point, chunk, runs, reason, values) for every finished chunk."""
    path = os.fspath(path)
    group = _zarr().open_group(path, mode="r")
    names = _array_names(group)
    for static_index, chunk_index, runs in _chunks(description):
        finished, reason, values = _chunk_state(path, group, names, description["shapes"],
                                                static_index, chunk_index, runs)
        if finished:
            yield static_index, chunk_index, runs, reason, values


def verify_chunks(path: str | os.PathLike, description: dict) -> list[tuple[int, int, str]]:
    """(static point, chunk, reason) of every finished chunk whose data is not as written."""
    return [(s, c, reason) for s, c, _, reason, _ in _scan(path, description)
            if reason is not None]


def damage_report(path: str, description: dict, damaged: list, action: str) -> str:
    """One paragraph naming the damaged runs of a store by their parameter values."""
    from lazyrich.experiments.base import get_experiment

    experiment = get_experiment(description["experiment"])
    axes = description["axes"]
    static_axes = [k for k in axes if experiment.parameters[k].static]
    batched_axes = [k for k in axes if not experiment.parameters[k].static]
    static_points = list(itertools.product(*(axes[k] for k in static_axes)))
    batched_shape = tuple(len(axes[k]) for k in batched_axes)
    size = description["chunk_size"]
    lines = []
    for static_index, chunk_index, reason in damaged:
        labels = []
        runs = range(chunk_index * size,
                     min((chunk_index + 1) * size, description["shapes"]["diverged"][1]))
        for run in runs:
            index = np.unravel_index(run, batched_shape) if batched_shape else ()
            label = dict(zip(static_axes, static_points[static_index], strict=True))
            label.update({k: axes[k][i] for k, i in zip(batched_axes, index, strict=True)})
            labels.append(", ".join(f"{k}={v!r}" for k, v in label.items()) or "the run")
        lines.append(f"chunk {static_index}_{chunk_index} ({reason}): runs "
                     + "; ".join(labels))
    return (f"store={path!r}: {len(damaged)} finished chunk(s) are damaged; {action}. "
            + " | ".join(lines))


def read_store(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray], np.ndarray]:
    """(description, name -> flat array, finished mask (static points, runs)) of a store.

    Damaged chunks (see `verify_chunks`) count as unfinished, read as NaN, and are named in a
    `StoreDamageWarning`.
    """
    description = stored_description(path)
    shapes = {name: tuple(shape) for name, shape in description["shapes"].items()}
    arrays = {name: np.full(shape, False if name == "diverged" else np.nan,
                            dtype=bool if name == "diverged" else description["dtype"])
              for name, shape in shapes.items()}
    finished = np.zeros(shapes["diverged"], dtype=bool)
    damaged = []
    for static_index, chunk_index, runs, reason, values in _scan(path, description):
        if reason is not None:
            damaged.append((static_index, chunk_index, reason))
            continue
        for name, value in values.items():
            arrays[name][static_index, runs] = value
        finished[static_index, runs] = True
    if damaged:
        warnings.warn(damage_report(os.fspath(path), description, damaged,
                                    "they read as unfinished (NaN) until a sweep resumes them"),
                      StoreDamageWarning, stacklevel=3)
    return description, arrays, finished


def stored_description(path: str | os.PathLike) -> dict:
    """The description (configuration, chunk size, dtype) a store was made with."""
    try:
        group = _zarr().open_group(os.fspath(path), mode="r")
        description = json.loads(group.attrs["lazyrich_store"])
        if "shapes" not in description:  # stores written before shapes were recorded
            description["shapes"] = {name: list(array.shape)
                                     for name, array in group.arrays()}
        return description
    except (KeyError, OSError, ValueError, _zarr().errors.BaseZarrError):
        raise ValueError(f"path={os.fspath(path)!r} is not a lazyrich sweep store") from None
