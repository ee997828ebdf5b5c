"""Times read off grokking learning curves: when the test loss groks, and how long after the
train loss (`dmft/README.md`, "Status"; the issue-14 targets compare both with simulation).

Both work on one curve sampled at increasing times and interpolate linearly between samples,
so a theory curve and a simulation curve on different grids are compared on equal terms.
"""

from __future__ import annotations

import numpy as np


def crossing_time(time, curve, level: float, start: int = 0) -> float:
    """First time at or after index `start` at which `curve` falls to `level` (linear
    interpolation between samples); nan if it never does.

    Args:
        time: (T,) increasing times; curve: (T,) values; level: the value to reach.
    """
    time, curve = np.asarray(time, np.float64), np.asarray(curve, np.float64)
    if time.shape != curve.shape or time.ndim != 1:
        raise ValueError(f"time and curve must be 1-d of one length; got shapes {time.shape} "
                         f"and {curve.shape}")
    below = np.nonzero(curve[start:] <= level)[0]
    if below.size == 0:
        return float("nan")
    k = start + int(below[0])
    if k == 0 or curve[k] == curve[k - 1]:
        return float(time[k])
    fraction = (level - curve[k - 1]) / (curve[k] - curve[k - 1])
    return float(time[k - 1] + fraction * (time[k] - time[k - 1]))


def grokking_time(time, test_loss) -> float:
    """First time after the test loss's maximum (its plateau) at which it is half that maximum
    (the definition of the README's agreement tables)."""
    top = int(np.argmax(test_loss))
    return crossing_time(time, test_loss, float(np.asarray(test_loss)[top]) / 2, top)


def half_drop_time(time, curve) -> float:
    """First time after the curve's maximum at which it has made half its drop from that
    maximum to its last value."""
    curve = np.asarray(curve, np.float64)
    top = int(np.argmax(curve))
    return crossing_time(time, curve, (curve[top] + curve[-1]) / 2, top)


def delay(time, train_loss, test_loss) -> float:
    """Train-to-test delay: half_drop_time of the test loss minus that of the train loss."""
    return half_drop_time(time, test_loss) - half_drop_time(time, train_loss)
