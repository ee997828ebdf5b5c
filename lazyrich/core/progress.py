"""Progress from inside a compiled sweep: optimisation steps reported at every log point.

The engine's scan calls `report` through `jax.debug.callback` at each log point of each run, so a
sweep whose one chunk runs for minutes still shows its steps and an ETA. The callback is part of
every compiled program (results do not depend on whether a bar is shown); with no sink installed
(e.g. on a Ray worker, or `progress=False`) it does nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import numpy as np

_lock = threading.Lock()
_sink: Callable[[int], None] | None = None


def report(steps_per_run: np.ndarray, runs: np.ndarray) -> None:
    """Host side of the callback: `steps_per_run` steps were taken by `runs.size` runs.

    Under `vmap` the callback may see one run or a whole batch at a time; counting the batch's
    elements makes both give the same total.
    """
    sink = _sink
    if sink is not None:
        sink(int(steps_per_run) * int(np.size(runs)))


@contextlib.contextmanager
def reporting(sink: Callable[[int], None] | None) -> Iterator[None]:
    """Send the steps reported by compiled sweeps to `sink(n_steps)` inside the block."""
    global _sink
    with _lock:
        previous, _sink = _sink, sink
    try:
        yield
    finally:
        with _lock:
            _sink = previous
