"""Argument checks shared by the theory's public functions (`dmft.grokking`, `kernel`, ...).

Thin wrappers over `lazyrich.core.checks` for the shapes the theory takes: a parameter that is
one number, one that is a number or a 1-d list of them (a batched axis), and a finite array.
Every error is a `TypeError` (wrong kind of value) or `ValueError` (wrong value) whose message
names the argument, the value received and what is allowed.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from lazyrich.core.checks import check_finite


def _bound(minimum: float | None, inclusive: bool, maximum: float | None) -> str:
    if minimum is None:
        return ""
    text = f"{'>=' if inclusive else '>'} {minimum:g}"
    return text if maximum is None else f"in {'[' if inclusive else '('}{minimum:g}, {maximum:g}]"


def number(name: str, value: Any, minimum: float | None = 0.0, inclusive: bool = False,
           maximum: float | None = None) -> float:
    """`value` as a float: one finite real number > minimum (>= if inclusive, <= maximum;
    minimum=None: any finite number)."""
    allowed = f"a single finite number {_bound(minimum, inclusive, maximum)}".rstrip()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        kind = "a sequence" if np.ndim(value) else f"type {type(value).__name__}"
        raise TypeError(f"{name}={value!r} is {kind}; {name} must be {allowed}")
    value = float(value)
    low = minimum is not None and (value < minimum or (value == minimum and not inclusive))
    if not np.isfinite(value) or low or (maximum is not None and value > maximum):
        raise ValueError(f"{name}={value!r} is out of range; {name} must be {allowed}")
    return value


def values(name: str, value: Any, minimum: float = 0.0, inclusive: bool = False) -> np.ndarray:
    """`value` as a 1-d float array: a finite number or non-empty 1-d list of them, each
    > minimum (>= if inclusive)."""
    allowed = (f"a finite number or a non-empty 1-d list of finite numbers, each "
               f"{_bound(minimum, inclusive, None)}")
    if isinstance(value, str | bytes) or np.ndim(value) > 1 or np.size(value) == 0:
        raise TypeError(f"{name}={value!r} has shape {np.shape(value)}; {name} must be {allowed}")
    try:
        array = check_finite(name, np.atleast_1d(value)).astype(np.float64)
    except ValueError as error:
        raise ValueError(f"{name}={value!r}: {error}; {name} must be {allowed}") from None
    low = array < minimum if inclusive else array <= minimum
    if np.any(low):
        raise ValueError(f"{name}={value!r} has {array[low][0]:g}; {name} must be {allowed}")
    return array


def finite_array(name: str, value: Any, ndim: int | None = None) -> np.ndarray:
    """`value` as a finite real float64 array (optionally of `ndim` dimensions)."""
    if value is None:
        raise TypeError(f"{name}=None; {name} must be a real array")
    array = check_finite(name, value).astype(np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} has shape {array.shape}; it must have {ndim} dimension(s)")
    return array
