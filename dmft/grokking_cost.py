"""Time grid, memory and run time of the grokking DMFT (`dmft/grokking.py`), known before it runs.

The DMFT's own time is s = t / D (`dmft/README.md`, G6-G10): its explicit Euler scheme is stable
for ds < 1 / (1 + lam^-1/2)^2 (lam = P / D; the top of the Marchenko-Pastur spectrum), i.e.
dt < D / (1 + lam^-1/2)^2 in simulation time t = step x lr_scale. The default grid takes half of
that limit (the setting of every measured figure in the README: dt = 0.25 D at lam = 5), so the
number of time points n = t_max / dt is set by the horizon in the theory's unit, t_max / D.

Memory per batch point (alpha x eps x target_scale x P_over_D combinations) is dominated by the
M sample paths' bulk factors, M n r (r = bulk rank), and the n x n response and weight kernels:

    bytes ~ 8 [batch (M n (4 r + 11) + 85 n^2) + M^2]

fitted to XLA's own memory analysis of the compiled iteration (`tests/test_dmft_cost.py`
checks the formula against it), plus the fixed-point state held three times (old, new, damped).
Time per iteration counts the work, batch [M n^2 (2 r + 8) + 4 M^2 n + 6 (M_R + 1) n^3], at the
throughput measured on a quiet 2-core CPU (`FLOPS_PER_SECOND`: `lazyrich compare` at n = 408 and
420, M = 400, M_R = 32, batch 6 took 13.1 and 13.5 s per iteration, 9.5e9 and 9.9e9 counted
flop/s). Cores shared with other work run it several times slower, so the estimate is a lower
bound; the solver's progress bar reports the real rate and time left.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dmft import checks
from dmft.fixed_point import format_seconds
from lazyrich.core.checks import check_positive_integer, format_bytes

STABLE_FRACTION = 0.5      # default dt as a fraction of the stability limit
FLOPS_PER_SECOND = 9.5e9   # measured throughput of the iteration on a quiet 2-core CPU
TYPICAL_ITERATIONS = 25    # iterations to tol = 1e-5 in the README's runs (22-24)


def stability_limit_dt(D: int, P_over_D) -> float:
    """Largest stable dt (simulation time) of the explicit scheme: D / (1 + lam^-1/2)^2, for the
    smallest lam = P / D given (the most restrictive)."""
    check_positive_integer("D", D)
    lam = float(np.min(checks.values("P_over_D", P_over_D)))
    return D / (1 + 1 / math.sqrt(lam)) ** 2


def default_dt(t_max: float, D: int, P_over_D) -> float:
    """dt = t_max / ceil(t_max / (0.5 x stability limit)): half the stability limit, rounded
    down so that the grid ends exactly at t_max."""
    t_max = checks.number("t_max", t_max)
    step = STABLE_FRACTION * stability_limit_dt(D, P_over_D)
    return t_max / max(1, math.ceil(t_max / step - 1e-9))


class Cost(NamedTuple):
    """Size and cost of one DMFT solve, from its shapes alone."""

    time_points: int              # n = t_max / dt + 1
    memory_bytes: float           # peak bytes of the iteration's arrays
    seconds_per_iteration: float  # at FLOPS_PER_SECOND (order of magnitude)
    dt: float

    def __str__(self) -> str:
        per = self.seconds_per_iteration
        return (f"{self.time_points} time points (dt={self.dt:.4g}), about "
                f"{format_bytes(self.memory_bytes)} of memory and ~{format_seconds(per)} per "
                f"fixed-point iteration (~{format_seconds(TYPICAL_ITERATIONS * per)} for the "
                f"~{TYPICAL_ITERATIONS} iterations a 1e-5 tolerance usually takes)")


def estimate_cost(t_max: float = 10_000.0, dt: float | None = None, *, D: int = 100,
                  P_over_D=5.0, batch: int = 1, n_samples: int = 1000, n_response: int = 64,
                  bulk_rank: int = 48) -> Cost:
    """Memory and time of `dmft.grokking.solve` with these sizes, before anything is allocated.

    Args:
        t_max, dt, D, P_over_D, n_samples, n_response, bulk_rank: as in `solve` (dt=None: the
            default grid, half the stability limit).
        batch: number of (alpha, eps, target_scale, P_over_D) combinations solved together.

    Returns:
        Cost(time_points, memory_bytes, seconds_per_iteration, dt).
    """
    t_max = checks.number("t_max", t_max)
    dt = default_dt(t_max, D, P_over_D) if dt is None else checks.number("dt", dt)
    n = int(round(t_max / dt)) + 1
    samples, rank = float(n_samples), float(min(bulk_rank, n))
    memory = 8 * (batch * (samples * n * (4 * rank + 11) + 85.0 * n * n) + samples**2)
    flops = batch * (samples * n * n * (2 * rank + 8) + 4 * samples**2 * n
                     + 6.0 * (n_response + 1) * float(n) ** 3)
    return Cost(n, memory, flops / FLOPS_PER_SECOND, dt)
