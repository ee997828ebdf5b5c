"""Checkpoints of a fixed-point iteration, so that a long DMFT solve killed halfway resumes.

A rich-corner grokking solve runs for tens of minutes on a CPU; without a checkpoint a crash,
a ^C or a time limit at iteration 60 of 68 loses all of it. With `solve(checkpoint=path)` the
iteration writes its current iterate to `path` (an .npz file) every `every_seconds` and when
it stops, and the same call again starts from what it finds there:

- the file holds the flattened iterate (batch, size) and its curves (so the first iteration
  after a resume measures its residual), the iterations done, the damping in use, the time
  window reached (and the last settled window's iterate while windows are active) and a
  fingerprint of everything that defines the map (parameters, grid, draws, dtype, ...);
  tol, max_iter, progress, damping and anderson change how the fixed point is reached, not which,
  and may differ between the calls (raise max_iter or loosen tol and call again);
- it is written to a temporary file beside `path` and moved over it with `os.replace`, so a
  kill at any moment leaves the previous complete checkpoint or the new one, never a torn one;
- `<path>.lock` is held while the iteration runs: two solves given one checkpoint take turns,
  the second starting from the first's end;
- a file written by another solve (another fingerprint) or not a checkpoint at all is refused,
  naming `checkpoint=` and what differs, before any iteration runs; so is a folder the solve
  cannot write in. A write that fails later (a full disk) warns `CheckpointWarning` and the
  solve goes on; ^C writes the iterate before it stops the solve.

Whatever the file holds is only a starting point: the iteration converges to the fixed point of
the map it is given, so a resumed solve returns the same curves as an uninterrupted one (with
plain damping, the same iterates: `tests/test_dmft_checkpoint.py`).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pathlib
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lazyrich.core.locks import held_lock

FORMAT = "lazyrich dmft checkpoint 2"
# arguments that change how the fixed point is reached, not which one
NOT_IN_MAP = ("tol", "max_iter", "progress", "damping", "anderson", "checkpoint")


class CheckpointWarning(RuntimeWarning):
    """A checkpoint could not be written; the solve went on without it."""


def fingerprint(arguments: dict) -> dict:
    """A JSON-able record of everything in `arguments` (a solver's checked arguments) that
    defines its map, arrays as lists of floats."""
    def plain(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        if isinstance(value, (list, tuple)):
            return [plain(item) for item in value]
        return value

    return {key: plain(value) for key, value in sorted(arguments.items())
            if key not in NOT_IN_MAP}


def short_name(value) -> str:
    """Ten hex digits naming `repr(value)`: a file name for the work of one configuration
    (another configuration keeps its work in another file)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:10]


def check_path(checkpoint) -> pathlib.Path | None:
    """`checkpoint=`: None, or a file path (str or os.PathLike) whose folder exists."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)) or not str(checkpoint):
        raise ValueError(f"checkpoint must be a file path (str or os.PathLike) or None; got "
                         f"{checkpoint!r}")
    path = pathlib.Path(checkpoint)
    if path.is_dir():
        raise ValueError(f"checkpoint={str(checkpoint)!r} is a directory; give a file path "
                         f"such as {str(path / 'solve.npz')!r}")
    if not path.parent.is_dir():
        raise ValueError(f"checkpoint={str(checkpoint)!r}: its folder {str(path.parent)!r} "
                         f"does not exist")
    return path


@dataclass(frozen=True)
class Checkpoint:
    """Where and for which map a fixed-point iteration keeps its iterate.

    path: the .npz file; record: `fingerprint` of the solve (compared on load);
    every_seconds: the longest time between two writes while iterating."""

    path: pathlib.Path
    record: dict
    every_seconds: float = 60.0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold `<path>.lock` (waiting, with a message, while another solve holds it)."""
        with held_lock(str(self.path) + ".lock", f"checkpoint={str(self.path)!r}",
                       f"checkpoint {str(self.path)!r} is in use by another solve: waiting for "
                       f"it to finish (then starting from its end)"):
            yield

    def load(self, batch: int, size: int) -> dict | None:
        """The saved iteration (keys flat (batch, size), curves, iterations, residual, damping,
        initial_damping, front, settled_front and, while windows were active, settled), or None
        when there is no file yet."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                found = {key: saved[key] for key in saved.files}
            header = json.loads(str(found.pop("header")))
            if header.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT!r} file")
            # every part a resume reads must be there (a KeyError here names the one missing)
            _ = (header["record"], header["loop"]["iterations"], header["loop"]["residual"],
                 found["flat"], found["curves"])
        except Exception as error:      # a foreign or damaged file: name it, touch nothing
            raise ValueError(f"checkpoint={str(self.path)!r} is not a readable checkpoint "
                             f"({type(error).__name__}: {error}); delete it or give another "
                             f"path") from None
        if header["record"] != json.loads(json.dumps(self.record)):
            differ = sorted(key for key in set(header["record"]) | set(self.record)
                            if header["record"].get(key) != json.loads(json.dumps(
                                self.record.get(key))))
            raise ValueError(f"checkpoint={str(self.path)!r} was written by another solve "
                             f"(it differs in {', '.join(differ)}); delete it or give another "
                             f"path")
        if found["flat"].shape != (batch, size):
            raise ValueError(f"checkpoint={str(self.path)!r} holds an iterate of shape "
                             f"{found['flat'].shape}, not ({batch}, {size})")
        return {"flat": found["flat"], "curves": found["curves"],
                "settled": found.get("settled"), **header["loop"]}

    def save(self, flat, curves, settled, **loop) -> bool:
        """Write the iterate (batch, size), its curves and the settled window's iterate (or
        None) with the loop's counters (JSON-able keywords) atomically over `path`. A write
        that fails (a full disk, say) warns and returns False: the solve goes on without it."""
        header = {"format": FORMAT, "record": self.record, "loop": loop}
        arrays = {"flat": np.asarray(flat), "curves": np.asarray(curves),
                  "header": np.array(json.dumps(header))}
        if settled is not None:
            arrays["settled"] = np.asarray(settled)
        # a write killed earlier leaves its temporary file; the lock says none is in progress
        for stale in self.path.parent.glob(glob.escape(self.path.name) + ".*.partial"):
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            self._write(arrays)
        except OSError as error:
            warnings.warn(f"checkpoint={str(self.path)!r} could not be written ({error}); the "
                          f"solve goes on, and a kill now loses what the last checkpoint does "
                          f"not hold", CheckpointWarning, stacklevel=3)
            return False
        return True

    def _write(self, arrays: dict) -> None:
        descriptor, temporary = tempfile.mkstemp(prefix=self.path.name + ".",
                                                 suffix=".partial", dir=self.path.parent)
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)      # mkstemp's 0600 -> a normal file's mode
            with os.fdopen(descriptor, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
