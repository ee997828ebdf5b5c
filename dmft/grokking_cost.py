"""Time grid, memory and run time of the grokking DMFT (`dmft/grokking.py`), known before it runs.

The DMFT's own time is s = t / D (`dmft/README.md`, G6-G10): its explicit Euler scheme is stable
for ds < 1 / (1 + lam^-1/2)^2 (lam = P / D; the top of the Marchenko-Pastur spectrum), i.e.
dt < D / (1 + lam^-1/2)^2 in simulation time t = step x lr_scale. The default grid takes half of
that limit (the setting of every measured figure in the README: dt = 0.25 D at lam = 5), so the
number of time points n = t_max / dt is set by the horizon in the theory's unit, t_max / D.

Memory per batch point (alpha x eps x target_scale x P_over_D combinations) is dominated by the
M sample paths' bulk factors, M n r (r = bulk rank), and the n x n response and weight kernels:

    bytes ~ 8 [batch (M n (4 r + 11) + 85 n^2 + (2 h + 3)(3 M n + 7 n^2)) + M^2]

fitted to XLA's own memory analysis of the compiled iteration (`tests/test_dmft_cost.py`
checks the formula without the last term against it); the last term is the Anderson history
(h = `anderson` earlier iterates and residuals, 0 for plain damping).
Time per iteration counts the floating-point work of each phase from the shapes
(`iteration_work`: path march, bulk solves, response solves, mixing, kernels, averages; the
response solves, ~16 M_R n^3, dominate at n > 200), at the throughput measured on a quiet 2-core
CPU (`FLOPS_PER_SECOND`: `benchmarks/dmft_cost.py` on 2 pinned cores of an otherwise idle Xeon,
15.7 counted Gflop in 0.42 s at n = 337, M = 400, M_R = 16, r = 16, 36% of the 104 Gflop/s
float64 matmul rate measured in the same run; 846 Gflop in 13.2 s at n = 801, M = 4000,
M_R = 64, 61%). A rough guide in both directions: cores
shared with other work run it several times slower, a batch of points faster than one point
(dmft/README.md); the solver's progress bar reports the real rate and time left.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dmft import checks
from dmft.fixed_point import format_seconds
from lazyrich.core.checks import check_positive_integer, format_bytes

STABLE_FRACTION = 0.5      # default dt as a fraction of the stability limit
FLOPS_PER_SECOND = 3.7e10  # achieved by the whole iteration on a quiet 2-core CPU (benchmark)
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


SCHEMES = ("explicit", "implicit")
FIRST_STEPS_S = 10.0          # the linear fit settles by s ~ 10 at lam >= 4: steps stay fine
GROWTH = 1.05                 # then each step is at most 5% longer than the one before
SLOW_DS_PER_ALPHA_OVER_EPS = 0.02   # ... up to ds = 0.02 alpha / eps (the features' time scale)


def linear_fit_settles(P_over_D) -> float:
    """s by which the linear fit has settled: max(FIRST_STEPS_S, 5 / its slowest rate
    2 (1 - lam^-1/2)^2) (five e-folds of the bottom of the Marchenko-Pastur spectrum; smallest
    lam given); inf for lam <= 1, where that rate vanishes."""
    lam = float(np.min(checks.values("P_over_D", P_over_D)))
    if lam <= 1:
        return float("inf")
    return max(FIRST_STEPS_S, 5.0 / (2 * (1 - 1 / math.sqrt(lam)) ** 2))


def adaptive_times(t_max: float, D: int, P_over_D, alpha, eps, *,
                   slow_ds_per_alpha_over_eps: float = SLOW_DS_PER_ALPHA_OVER_EPS,
                   growth: float = GROWTH, settled: float | None = None) -> np.ndarray:
    """A non-uniform grid (simulation time, (n,), from 0 to t_max) for `solve(scheme="implicit",
    times=...)`: fine where the linear fit moves, coarse where only the features do.

    In the theory's time s = t / D: steps of half the explicit stability limit
    (`default_dt` / D), or slow_ds_per_alpha_over_eps x alpha / eps if smaller (rich runs),
    until the linear fit has settled (`linear_fit_settles`: s = 10 at lam >= 4, later as lam
    falls to 1, never at lam <= 1), then each step `growth` times the one before, up to
    ds = slow_ds_per_alpha_over_eps x alpha / eps (smallest alpha, largest eps given: the
    feature dynamics' rate is (2 eps / alpha) times an O(1) residual average, so this bounds its
    per-step change by ~4% of an e-fold). The last step is shortened to end at t_max.
    `settled` (in s) overrides when the steps start to grow.
    Past the stability limit only the implicit scheme is stable; the explicit scheme's steps
    must stay below it (`solve` checks).
    """
    t_max = checks.number("t_max", t_max)
    check_positive_integer("D", D, minimum=2)
    alpha = float(np.min(checks.values("alpha", alpha)))
    eps = float(np.max(checks.values("eps", eps, inclusive=True)))
    slow = checks.number("slow_ds_per_alpha_over_eps", slow_ds_per_alpha_over_eps)
    growth = checks.number("growth", growth)
    if growth < 1:
        raise ValueError(f"growth={growth!r} must be at least 1")
    s_max = t_max / D
    first = STABLE_FRACTION * stability_limit_dt(D, P_over_D) / D
    # the explicit feature steps need ds <= slow alpha / eps in the rich regime too; without
    # features (eps = 0) only the linear modes move, and they set the steps throughout
    largest = slow * alpha / eps if eps > 0 else first
    first = min(first, largest)
    settled = (linear_fit_settles(P_over_D) if settled is None
               else checks.number("settled", settled, inclusive=True))
    points, ds = [0.0], first
    while points[-1] < s_max * (1 - 1e-12):
        points.append(min(points[-1] + ds, s_max))
        if points[-1] >= settled:
            ds = min(ds * growth, largest)
    if len(points) > 2 and points[-1] - points[-2] < 0.5 * (points[-2] - points[-3]):
        points[-2] = (points[-1] + points[-3]) / 2   # no sliver of a last step: split evenly
    times = np.asarray(points) * D
    times[-1] = t_max       # exactly: s_max * D can round below t_max, off a run's last time
    return times


def iteration_work(n: int, n_samples: int, n_response: int, bulk_rank: int) -> dict:
    """{phase: (flops, bytes)} of one fixed-point iteration for one parameter point, from the
    shapes (n time points, M = n_samples paths, M_R = n_response, r = bulk_rank <= n).

    Counts a multiply-add as 2 flops and the bytes as the float64 arrays each phase must read
    or write at least once (a lower bound on memory traffic):
    - kernels: H (G9, n rows of a (n, 2, 2) x (n, n, 2, 2) contraction), H_g and A (G9b),
      C_g = A A^T + H_g C_Phi^g H_g^T and its eigendecomposition (~9 n^3);
    - mixing: the forces' fields H Phi (8 M n^2) and the Haar mixing of paths (4 M^2 n);
    - bulk solves: Y = L F, one n x n triangular solve with r right-hand sides per path;
    - path march: a_k = chi_k - c sum_j H_kj Phi_j, step by step (8 M n^2; the history of every
      path is read at each of the n steps);
    - responses: per response path two n x n triangular inversions, the bulk memory product, the
      product c H Jt through Jt's structure (4 n^3) and a (2n x 2n) triangular solve with 2n
      right-hand sides (8 n^3): ~16 n^3 + 2 n^2 r;
    - averages: C_Phi^g and Xi (two (n, M r) x (M r, n) products), local Jacobians.
    """
    m, mr, r, nf = float(n_samples), float(n_response), float(min(bulk_rank, n)), float(n)
    word = 8.0
    return {
        "kernels": (31 * nf**3, word * (4 * nf**3 + 10 * nf**2)),
        "mixing": (8 * m * nf**2 + 4 * m**2 * nf, word * (4 * nf**2 + 6 * m * nf + m**2)),
        "bulk solves": (m * nf**2 * (r + 2), word * m * (nf**2 + 2 * nf * r)),
        "path march": (8 * m * nf**2, word * 2 * m * nf**2),
        "responses": (mr * (16 * nf**3 + 2 * nf**2 * r), word * mr * 18 * nf**2),
        "averages": (4 * m * nf**2 * r + 40 * m * nf, word * (2 * m * nf * r + 2 * nf**2)),
    }


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
                  bulk_rank: int = 16, anderson: int = 0, times=None, draws: int = 1) -> Cost:
    """Memory and time of `dmft.grokking.solve` with these sizes, before anything is allocated.

    Args:
        t_max, dt, D, P_over_D, n_samples, n_response, bulk_rank, times: as in `solve` (dt=None:
            the default grid, half the stability limit; `times` given: its length is n, and
            Cost.dt is its largest step).
        batch: number of (alpha, eps, target_scale, P_over_D) combinations solved together.
        draws: number of Monte Carlo seeds solved together (`solve`'s list `seed`): each
            multiplies the batch and holds its own (M, M) mixing matrix.
        anderson: Anderson history (`solve`'s `anderson`): 2 anderson + 3 more copies of the
            fixed-point state (3 M n + 7 n^2 numbers per batch point) are held.

    Returns:
        Cost(time_points, memory_bytes, seconds_per_iteration, dt).
    """
    if times is not None:
        times = checks.finite_array("times", times, ndim=1)
        if times.size < 2:
            raise ValueError(f"times must have at least 2 points; got {times.size}")
        n, dt = times.size, float(np.max(np.diff(times)))
    else:
        t_max = checks.number("t_max", t_max)
        dt = default_dt(t_max, D, P_over_D) if dt is None else checks.number("dt", dt)
        n = int(round(t_max / dt)) + 1
    samples, rank = float(n_samples), float(min(bulk_rank, n))
    state = 3 * samples * n + 7.0 * n * n
    check_positive_integer("draws", draws)
    batch = batch * draws
    memory = 8 * (batch * (samples * n * (4 * rank + 11) + 85.0 * n * n
                           + (2 * anderson + 3) * state * (anderson > 0)) + draws * samples**2)
    work = iteration_work(n, n_samples, n_response, bulk_rank)
    flops = batch * sum(flops for flops, _ in work.values())
    return Cost(n, memory, flops / FLOPS_PER_SECOND, dt)
