"""Turning `sweep(**params)` keyword arguments into validated sweep axes.

A keyword given as a sequence (list, tuple, range, 1-d numpy/JAX array) becomes a sweep axis,
even of length 1, in keyword order; anything else is a scalar that fixes the parameter for every
run. Every value is validated against the experiment's `Parameter` before anything is compiled.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from lazyrich.experiments.base import Experiment


@dataclasses.dataclass(frozen=True)
class Axis:
    """One sweep axis: a parameter name, its validated values, and whether it is static."""

    name: str
    values: tuple
    static: bool


@dataclasses.dataclass(frozen=True)
class Grid:
    """The full set of runs asked for.

    Attributes:
        experiment: the experiment being swept.
        axes: sweep axes in keyword order.
        scalars: every parameter that is not a sweep axis -> its validated value (defaults
            included).
    """

    experiment: Experiment
    axes: tuple[Axis, ...]
    scalars: Mapping[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    @property
    def n_runs(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def static_axes(self) -> tuple[Axis, ...]:
        return tuple(a for a in self.axes if a.static)

    @property
    def batched_axes(self) -> tuple[Axis, ...]:
        return tuple(a for a in self.axes if not a.static)

    def static_points(self) -> Iterator[tuple[tuple[int, ...], dict[str, Any]]]:
        """Yield (index into the static axes, all static values) for every compilation."""
        axes = self.static_axes
        static_scalars = {k: v for k, v in self.scalars.items()
                          if self.experiment.parameters[k].static}
        for index in itertools.product(*(range(len(a.values)) for a in axes)):
            point = {a.name: a.values[i] for a, i in zip(axes, index, strict=True)}
            yield index, {**static_scalars, **point}

    def batched_scalars(self) -> dict[str, Any]:
        """Batched parameters that are not sweep axes (same value in every run)."""
        return {k: v for k, v in self.scalars.items() if not self.experiment.parameters[k].static}

    def batched_columns(self) -> dict[str, np.ndarray]:
        """name -> values of every batched axis, one entry per run of one static point.

        Runs are enumerated in C order over the batched axes (the last axis varies fastest).
        """
        axes = self.batched_axes
        if not axes:
            return {}
        mesh = np.meshgrid(*(np.asarray(a.values) for a in axes), indexing="ij")
        return {a.name: m.reshape(-1) for a, m in zip(axes, mesh, strict=True)}

    def config(self) -> dict[str, Any]:
        """A JSON-serialisable description of the grid (for attrs and stores)."""
        return {
            "experiment": self.experiment.name,
            "axes": {a.name: [_plain(v) for v in a.values] for a in self.axes},
            "parameters": {k: _plain(v) for k, v in self.scalars.items()},
        }


def _plain(value: Any) -> Any:
    """Convert numpy scalars to Python ones for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _is_sequence(value: Any) -> bool:
    if isinstance(value, list | tuple | range):
        return True
    return hasattr(value, "shape") and hasattr(value, "dtype") and np.ndim(value) > 0


INT32_MAX = 2**31 - 1


def _check_traceable(name: str, spec, value: Any) -> Any:
    """A batched integer is traced as int32 unless float64 is on: refuse what would wrap.

    Parameters with their own `maximum` (seeds, < 2**32) are used as 32-bit key words, where the
    wrap to int32 keeps the same bits.
    """
    import jax

    if (spec.kind == "int" and not spec.static and spec.maximum is None
            and not jax.config.jax_enable_x64 and abs(value) > INT32_MAX):
        raise ValueError(f"{name}={value!r} is out of range; a batched integer must be at most "
                         f"{INT32_MAX} (enable float64 with jax.config.update('jax_enable_x64', "
                         f"True) for 64-bit integers)")
    return value


def make_grid(experiment: Experiment, params: Mapping[str, Any]) -> Grid:
    """Validate keyword arguments and split them into sweep axes and scalars.

    Raises:
        ValueError: unknown parameter name, empty or repeated axis values, a sequence for a
            scalar-only parameter, an out-of-range value, or `log_every` not dividing `steps`.
        TypeError: a value of the wrong type.
    """
    known = experiment.parameters
    axes: list[Axis] = []
    scalars: dict[str, Any] = {}
    for name, value in params.items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"{name}={value!r}: {experiment.name!r} has no parameter {name!r}"
                             f"{hint}; its parameters are {list(known)}")
        spec = known[name]
        if _is_sequence(value):
            if np.ndim(value) != 1:
                raise ValueError(f"{name} has shape {np.shape(value)}; a sweep axis must be a "
                                 f"1-d sequence of values")
            if not spec.sweepable:
                raise ValueError(f"{name}={list(value)!r}: {name} fixes the shape of the result "
                                 f"and cannot be a sweep axis; give one value, "
                                 f"{spec.allowed()}")
            raw = np.asarray(value).tolist() if hasattr(value, "dtype") else list(value)
            if not raw:
                raise ValueError(f"{name}=[] is empty; a sweep axis needs at least one value")
            values = tuple(_check_traceable(name, spec, spec.validate(name, v)) for v in raw)
            if len(set(values)) != len(values):
                raise ValueError(f"{name}={list(values)!r} repeats a value; sweep-axis values must "
                                 f"be distinct (repeat runs with the seed axis)")
            axes.append(Axis(name, values, spec.static))
        else:
            if isinstance(value, np.ndarray | np.generic):
                value = value.item()
            elif hasattr(value, "dtype"):
                value = np.asarray(value).item()
            scalars[name] = _check_traceable(name, spec, spec.validate(name, value))
    for name, spec in known.items():
        if name not in params:
            scalars[name] = spec.default
    steps, log_every = scalars["steps"], scalars["log_every"]
    if steps % log_every:
        raise ValueError(f"log_every={log_every} does not divide steps={steps}; choose log_every "
                         f"among the divisors of steps")
    return Grid(experiment, tuple(axes), scalars)
