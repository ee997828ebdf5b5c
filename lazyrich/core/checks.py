"""Checks at the public boundary: integer options, seeds, finite arrays, and memory up front.

Every entry point of the three packages validates its arguments here before it compiles or
allocates anything, so a bad value is an early `ValueError` / `TypeError` that names the
argument, the value received and what is allowed, and a computation that would not fit in memory
is refused with its estimate, the memory this process may still use, and the knob that shrinks it.
"""

from __future__ import annotations

import numbers
import os
import resource
from typing import Any

import numpy as np

SEED_LIMIT = 2**32  # seeds are the 32-bit words `jax.random.key` takes without wrapping
# Refuse a computation whose estimate is above this fraction of the memory still available:
# estimates count the arrays, not XLA's temporaries or the Python process itself.
MEMORY_FRACTION = 0.8


def check_positive_integer(name: str, value: Any, allow_none: bool = False,
                           minimum: int = 1) -> None:
    """Raise unless `value` is an integer >= `minimum` (or None when `allow_none`)."""
    allowed = f"an integer >= {minimum}" + (" or None" if allow_none else "")
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; {name} must be "
                        f"{allowed}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} is out of range; {name} must be {allowed}")


def check_seed(value: Any, name: str = "seed") -> int:
    """The seed as a Python int, refusing what would wrap or be truncated.

    Seeds are integers in [0, 2**32): `jax.random.key` keeps 32 bits of a seed under float32
    JAX, so a larger one would silently give another seed's numbers, and a fractional or negative
    one has no unambiguous meaning.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; a seed must be an "
                        f"integer in [0, 2**32 - 1]")
    if not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{name}={value!r} is out of range; a seed must be an integer in "
                         f"[0, 2**32 - 1] = [0, {SEED_LIMIT - 1}]")
    return int(value)


def check_finite(name: str, array: Any) -> np.ndarray:
    """`array` as a real float numpy array, refusing complex, non-numeric, NaN and inf values."""
    values = np.asarray(array)
    if np.iscomplexobj(values):
        raise TypeError(f"{name} is complex ({values.dtype}); it must be real")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == bool):
        raise TypeError(f"{name} has dtype {values.dtype}; it must be a real numeric array")
    if not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ValueError(f"{name} has {bad} NaN or infinite value(s); it must be finite")
    return values


def available_memory_bytes() -> int:
    """Bytes this process may still allocate: the host's available memory, capped by the
    address-space limit (`ulimit -v`, `resource.RLIMIT_AS`) minus what the process already maps.

    `LAZYRICH_MEMORY_BYTES`, when set, overrides the host reading (for tests and for shared
    machines where the whole host is not yours).
    """
    override = os.environ.get("LAZYRICH_MEMORY_BYTES")
    available = int(float(override)) if override else _host_available_bytes()
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft not in (resource.RLIM_INFINITY, -1):
        available = min(available, max(0, soft - _mapped_bytes()))
    return available


def _host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse on a guess


def _mapped_bytes() -> int:
    """Virtual memory this process maps now (what RLIMIT_AS counts)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def format_bytes(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    raise AssertionError("unreachable")


class MemoryEstimateError(MemoryError, ValueError):
    """A computation was refused before it started because its arrays would not fit."""


def require_memory(estimate_bytes: float, what: str, remedy: str) -> None:
    """Refuse (MemoryEstimateError) a computation whose arrays would not fit in memory.

    Args:
        estimate_bytes: peak bytes of the arrays the computation allocates, from their shapes.
        what: the computation and the shapes behind the estimate ("sweep of 64 runs of ...").
        remedy: the parameter(s) to change, e.g. "lower chunk_size= (now 64)".
    """
    available = available_memory_bytes()
    if estimate_bytes > MEMORY_FRACTION * available:
        raise MemoryEstimateError(
            f"{what} needs about {format_bytes(estimate_bytes)} but this process can use "
            f"{format_bytes(available)}; {remedy}")
