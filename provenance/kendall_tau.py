"""Kendall's tau-b in O(n log n) with asymptotic, exact and permutation p-values.

Kuditipudi et al. (2025) correlate Bob's per-example log-likelihoods with Alice's training
order; Kendall's tau is the pair-counting alternative to Spearman's rho on the same interface
(`provenance.stats`; both are built on `provenance.correlation`). Pairs are never enumerated:
discordant pairs are the inversions of y's dense ranks after sorting by (x, y), counted bit by
bit over the rank values with cumulative sums (O(n log n) time, O(n) memory), and tie groups are
runs in the sorted values.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from provenance.correlation import (
    ALTERNATIVES,
    METHODS,
    CorrelationResult,
    as_pair,
    check_choice,
    check_permutation_options,
    check_two_sided,
    counted_p,
    make_counted_result,
    make_result,
    require_permutation_memory,
    run_starts,
    sorted_runs,
)

KENDALL_EXACT_MAX_N = 100
# per shuffled value: orderings, shuffled ranks, sort keys and the inversion count's int arrays
KENDALL_BLOCK_BYTES = 128


def _dense_ranks_and_ties(x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Ranks 0, 1, ... of the distinct values along the last axis (int64) and the tie sums."""
    order, starts = sorted_runs(x)
    dense = np.empty(x.shape, np.int64)
    np.put_along_axis(dense, order, np.cumsum(starts, axis=-1) - 1, axis=-1)
    return dense, _tie_sums(starts)


def _position_in_run(starts: np.ndarray) -> np.ndarray:
    """0, 1, ..., t - 1 along each run of t equal values, from the run starts (..., n)."""
    position = np.arange(starts.shape[-1])
    return position - np.maximum.accumulate(np.where(starts, position, 0), axis=-1)


def _tie_sums(starts: np.ndarray) -> dict[str, np.ndarray]:
    """Sums over tie groups of sizes t: t(t-1)/2, t(t-1)(2t+5), t(t-1), t(t-1)(t-2).

    A group of t ties contributes sum_{k<t} g(k) for g(k) = f(k + 1) - f(k), so each sum is one
    pass over the within-run positions k: k, 6k^2 + 12k, 2k and 3k^2 - 3k respectively.
    """
    k = _position_in_run(starts)
    kf = k.astype(np.float64)
    return {"pairs": k.sum(axis=-1), "v0": np.sum(6 * kf * kf + 12 * kf, axis=-1),
            "v1": 2.0 * kf.sum(axis=-1), "v2": np.sum(3 * kf * kf - 3 * kf, axis=-1)}


def count_inversions(values) -> np.ndarray:
    """#{i < j : values_i > values_j} along the last axis, O(n log n) time, O(n) memory.

    values: non-negative integers (..., n) (e.g. dense ranks). Pairs whose values first differ
    at bit b (from the top) are counted at level b: within each group of equal higher bits, kept
    in original order, each 0-bit element is inverted with every earlier 1-bit element. A stable
    partition by bit b (cumulative sums, group sizes from one histogram) orders the groups for
    level b - 1. Returns int64 (...).
    """
    values = np.asarray(values)
    if values.dtype.kind not in "iub" or (values.size and values.min() < 0):
        smallest = values.min().item() if values.size and values.dtype.kind in "iubf" else None
        raise ValueError(f"values must be non-negative integers; got dtype {values.dtype}, "
                         f"smallest {smallest!r}")
    shape, n = values.shape[:-1], values.shape[-1]
    dtype = np.int32 if n < 2**31 - 1 else np.int64
    sequence = values.reshape(-1, n).astype(dtype)
    rows = sequence.shape[0]
    m = int(sequence.max(initial=0)) + 1
    offsets = np.arange(rows, dtype=np.int64)[:, None]
    histogram = np.bincount((sequence + offsets * m).ravel(), minlength=rows * m)
    below = np.zeros((rows, m + 1), np.int64)  # below[:, v] = #{values < v}
    np.cumsum(histogram.reshape(rows, m), axis=-1, out=below[:, 1:])
    position = np.arange(n, dtype=dtype)
    inversions = np.zeros(rows, np.int64)
    for bit_index in range(int(m - 1).bit_length() - 1, -1, -1):
        lows = np.arange(0, m, 1 << (bit_index + 1))
        first = below[:, lows]
        middle = below[:, np.minimum(lows + (1 << bit_index), m)]
        zeros = middle - first
        ones_before_group = (first - (np.cumsum(zeros, axis=-1) - zeros)).astype(dtype)
        group = sequence >> (bit_index + 1)
        bit = (sequence >> bit_index) & 1
        ones_before = (np.cumsum(bit, axis=-1, dtype=dtype) - bit
                       - np.take_along_axis(ones_before_group, group, axis=-1))
        inversions += np.sum(ones_before, axis=-1, where=bit == 0, dtype=np.int64)
        new_position = np.where(bit == 0, position - ones_before,
                                np.take_along_axis(middle.astype(dtype), group, -1) + ones_before)
        np.put_along_axis(sequence, new_position, sequence.copy(), axis=-1)
    return inversions.reshape(shape)


def _kendall_counts(dense_x: np.ndarray, dense_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Discordant pairs and joint-tie pairs sum t(t-1)/2 of dense-ranked (x, y) pairs (..., n)."""
    key = dense_x * (int(dense_y.max(initial=0)) + 1) + dense_y
    order = np.argsort(key, axis=-1)  # equal keys are joint ties: their order is irrelevant
    discordant = count_inversions(np.take_along_axis(np.broadcast_to(dense_y, key.shape), order,
                                                     axis=-1))
    joint = _position_in_run(run_starts(np.take_along_axis(key, order, axis=-1))).sum(axis=-1)
    return discordant, joint


@functools.lru_cache(maxsize=32)
def _mahonian_cumulative(n: int) -> tuple[int, ...]:
    """#{orderings of n distinct items with <= d inversions}, d = 0..n(n-1)/2 (exact integers)."""
    counts = np.array([1], dtype=object)
    for size in range(2, n + 1):
        cumulative = np.concatenate([np.zeros(size, dtype=object), np.cumsum(counts)])
        padded = np.concatenate([cumulative, np.full(size - 1, cumulative[-1], dtype=object)])
        counts = padded[size:] - padded[:-size]
    return tuple(np.cumsum(counts).tolist())


def _kendall_exact_p(discordant: np.ndarray, n: int, alternative: str) -> np.ndarray:
    """P(D' <= d) for D' Mahonian, d the tail's discordant count, as one correctly rounded
    division of exact integers; two-sided doubles it (capped at 1). The Mahonian law is
    symmetric, so the "absolute" and "doubled" two-sided conventions agree here."""
    cumulative, total = _mahonian_cumulative(n), n * (n - 1) // 2
    tail = {"greater": lambda d: d, "less": lambda d: total - d,
            "two-sided": lambda d: min(d, total - d)}[alternative]
    factor = 2 if alternative == "two-sided" else 1
    return np.vectorize(lambda d: min(1.0, factor * cumulative[tail(int(d))]
                                      / math.factorial(n)), otypes=[np.float64])(discordant)


def kendall(x, y, *, method: str = "asymptotic", alternative: str = "greater", axis: int = -1,
            n_permutations: int = 10_000, seed: int = 0, chunk: int = 64,
            two_sided: str = "absolute") -> CorrelationResult:
    """Kendall's tau-b of x and y along `axis` with a p-value, in O(n log n).

    tau_b = (n0 - n1 - n2 + n3 - 2 D) / sqrt((n0 - n1)(n0 - n2)), with n0 = n(n-1)/2 pairs, n1 /
    n2 pairs tied in x / y, n3 tied in both and D discordant pairs (inversions of y after sorting
    by (x, y)). "asymptotic": S = n0 - n1 - n2 + n3 - 2D is normal with the tie-corrected
    variance [v0 - vx - vy] / 18 + Sx1 Sy1 / (2 n (n-1)) + Sx2 Sy2 / (9 n (n-1)(n-2)).
    "exact": D follows the Mahonian distribution (n <= 100, no ties). "permutation": y is
    reordered by B seeded random permutations (shared by all models), batched in chunks of at
    most `chunk` permutations and BLOCK_ELEMENTS values; p = (1 + #{as extreme}) / (1 + B),
    exactly 1/(B + 1) at the floor. two_sided ("absolute" | "doubled"): as for `spearman`.
    """
    check_choice("method", method, METHODS)
    check_choice("alternative", alternative, ALTERNATIVES)
    check_two_sided(two_sided)
    seed = check_permutation_options(n_permutations, seed, chunk)
    x, y = as_pair(x, y, axis)
    n = x.shape[-1]
    (dense_x, ties_x), (dense_y, ties_y) = _dense_ranks_and_ties(x), _dense_ranks_and_ties(y)
    discordant, joint = _kendall_counts(dense_x, dense_y)
    total = n * (n - 1) // 2
    denominator = np.sqrt((total - ties_x["pairs"]) * (total - ties_y["pairs"]).astype(float))
    untied = total - ties_x["pairs"] - ties_y["pairs"]
    score = untied + joint - 2 * discordant
    tau = np.clip(score / denominator, -1.0, 1.0)
    if method == "asymptotic":
        variance = ((n * (n - 1.0) * (2 * n + 5) - ties_x["v0"] - ties_y["v0"]) / 18.0
                    + ties_x["v1"] * ties_y["v1"] / (2.0 * n * (n - 1))
                    + ties_x["v2"] * ties_y["v2"] / (9.0 * n * (n - 1) * (n - 2)))
        z = score / np.sqrt(variance)
        log_p = {"greater": lambda: special.log_ndtr(-z), "less": lambda: special.log_ndtr(z),
                 "two-sided": lambda: special.log_ndtr(-np.abs(z)) + math.log(2.0)}[alternative]()
        return make_result("kendall", tau, log_p, n, method, alternative)
    if method == "exact":
        if n > KENDALL_EXACT_MAX_N or np.any(ties_x["pairs"] + ties_y["pairs"] > 0):
            raise ValueError(f"method='exact' for kendall needs n <= {KENDALL_EXACT_MAX_N} and "
                             f"no ties; got n={n}; use 'asymptotic' or 'permutation'")
        p = _kendall_exact_p(discordant, n, alternative)
        return make_counted_result("kendall", tau, p, n, method, alternative)
    models = math.prod(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]))
    chunk = require_permutation_memory("kendall", models, n, n_permutations, chunk,
                                       KENDALL_BLOCK_BYTES)
    rng = np.random.default_rng(seed)
    null = []
    for start in range(0, n_permutations, chunk):
        size = min(chunk, n_permutations - start)
        orderings = rng.permuted(np.broadcast_to(np.arange(n), (size, n)), axis=-1)
        shuffled_y = np.take(dense_y, orderings, axis=-1)
        null_discordant, null_joint = _kendall_counts(dense_x[..., None, :], shuffled_y)
        null.append((untied[..., None] + null_joint - 2 * null_discordant)
                    / denominator[..., None])
    p = counted_p(tau, np.concatenate(null, -1), alternative, two_sided, random=True)
    return make_counted_result("kendall", tau, p, n, method, alternative)
