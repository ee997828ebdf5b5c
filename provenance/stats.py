"""Rank statistics for palimpsestic provenance tests: ranks, Spearman, Kendall tau-b, Pearson.

Kuditipudi et al. (2025), the query setting: under the null (Bob's model does not derive from
Alice's), Alice's training order is a uniformly random permutation independent of Bob's
per-example log-likelihoods, so any rank correlation between the two has a known null
distribution. Every function takes numpy or JAX arrays of shape (..., n), correlates along the
last axis (a leading axis of models is batched) and needs no n^2 memory.

p-values: "asymptotic" (Student t with n - 2 degrees of freedom for Spearman / Pearson, the
tie-corrected normal approximation for Kendall), "exact" (Spearman: complete enumeration of the
n! orderings, n <= 9; Kendall: the Mahonian distribution of the number of discordant pairs,
n <= 100, no ties) and "permutation" (B random orderings, p = (1 + #{null >= observed}) / (1 + B);
Spearman as one batched JAX computation in chunks, Kendall as batched numpy in chunks, because
its pair counts need int64). `log10_pvalue` comes from log-survival functions, so it stays finite
far below 1e-300.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np
from scipy import special, stats

METHODS = ("asymptotic", "exact", "permutation")
ALTERNATIVES = ("greater", "less", "two-sided")
EXACT_MAX_N = 9
KENDALL_EXACT_MAX_N = 100


@dataclasses.dataclass(frozen=True)
class CorrelationResult:
    """statistic, pvalue, log10_pvalue: arrays of the leading (models) shape, or scalars."""

    statistic: np.ndarray
    pvalue: np.ndarray
    log10_pvalue: np.ndarray
    n: int
    method: str
    alternative: str
    name: str

    def __str__(self) -> str:
        stat = np.asarray(self.statistic)
        log_p = np.asarray(self.log10_pvalue)
        if stat.ndim == 0:
            return (f"{self.name} = {float(stat):.6g}, p = {float(self.pvalue):.3g} "
                    f"(log10 p = {float(log_p):.2f}), n = {self.n}, {self.method}, "
                    f"alternative = {self.alternative}")
        return (f"{self.name} for {stat.size} models: statistic in [{stat.min():.4g}, "
                f"{stat.max():.4g}], smallest log10 p = {log_p.min():.2f}, n = {self.n}, "
                f"{self.method}, alternative = {self.alternative}")


def _as_pair(x, y, axis: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    y = np.moveaxis(np.asarray(y, np.float64), axis, -1)
    try:
        np.broadcast_shapes(x.shape, y.shape)
        if x.shape[-1] != y.shape[-1]:
            raise ValueError
    except (ValueError, IndexError):
        raise ValueError(f"x and y have shapes {x.shape} and {y.shape}, which do not "
                         f"broadcast to paired observations along axis {axis}") from None
    if x.shape[-1] < 3:
        raise ValueError(f"need at least 3 paired observations along axis {axis}, got "
                         f"{x.shape[-1]}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (found NaN or inf)")
    for name, values in (("x", x), ("y", y)):
        if np.any(np.all(values == values[..., :1], axis=-1)):
            raise ValueError(f"{name} is constant along axis {axis} (for at least one model); "
                             f"a correlation with a constant is undefined")
    return x, y


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; {name} must be one of {allowed}")


def rankdata(x, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along `axis`, ties given their average rank (O(n log n), float64).

    One unstable argsort (ties are averaged, so their order is irrelevant), one gather, one
    scatter; tie groups are found by comparing neighbours of the sorted values.
    """
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    order, starts = _sorted_runs(x)
    n = x.shape[-1]
    if starts.all():
        sorted_ranks = np.broadcast_to(np.arange(1.0, n + 1), x.shape)
    else:
        flat_starts = starts.ravel()
        first = np.flatnonzero(flat_starts)
        last = np.append(first[1:], flat_starts.size) - 1
        average = (first + last) / 2.0 - (first // n) * n + 1.0
        sorted_ranks = average[np.cumsum(flat_starts) - 1].reshape(x.shape)
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, sorted_ranks, axis=-1)
    return np.moveaxis(ranks, -1, axis)


def _sorted_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argsort of x (..., n) along the last axis, and where runs of equal sorted values start."""
    order = np.argsort(x, axis=-1)
    return order, _run_starts(np.take_along_axis(x, order, axis=-1))


def _run_starts(ordered: np.ndarray) -> np.ndarray:
    """True where a run of equal values begins in a sorted array (..., n)."""
    starts = np.ones(ordered.shape, dtype=bool)
    np.not_equal(ordered[..., 1:], ordered[..., :-1], out=starts[..., 1:])
    return starts


def _pearson_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt(np.sum(xc * xc, axis=-1) * np.sum(yc * yc, axis=-1))
    return np.clip(np.sum(xc * yc, axis=-1) / denominator, -1.0, 1.0)


def _log_t_sf(t: np.ndarray, dof: int) -> np.ndarray:
    """log P(T > t) for Student t, finite where scipy's logsf underflows (t >> 1).

    P(T > t) = I_x(dof/2, 1/2) / 2 with x = dof / (dof + t^2), and for small x
    log I_x(a, b) = a log x + b log(1 - x) - log a - log B(a, b) + log 2F1(a + b, 1; a + 1; x).
    """
    t = np.asarray(t, np.float64)
    direct = stats.t.logsf(t, dof)
    return np.where(np.isfinite(direct) | (t <= 0), direct, _log_t_sf_series(t, dof))


def _log_t_sf_series(t: np.ndarray, dof: int) -> np.ndarray:
    """The incomplete-beta series for log P(T > t), valid for t > 0."""
    a, b = dof / 2.0, 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        log_x = math.log(dof) - np.log(dof + t * t)
        x = np.exp(log_x)
        return (math.log(0.5) + a * log_x + b * np.log1p(-x) - math.log(a)
                - special.betaln(a, b) + np.log(special.hyp2f1(a + b, 1.0, a + 1.0, x)))


def _log_tail_t(r: np.ndarray, n: int, alternative: str) -> np.ndarray:
    """natural log of the Student-t p-value of a correlation r with n - 2 degrees of freedom."""
    # |r| = 1 would give t = inf; the finite cap keeps log p finite (and tiny) there
    r = np.clip(r, -1.0 + 1e-15, 1.0 - 1e-15)
    t = r * np.sqrt((n - 2) / (1.0 - r * r))
    if alternative == "greater":
        return _log_t_sf(t, n - 2)
    if alternative == "less":
        return _log_t_sf(-t, n - 2)
    return np.minimum(_log_t_sf(np.abs(t), n - 2) + math.log(2.0), 0.0)


def _result(name, statistic, log_p, n, method, alternative) -> CorrelationResult:
    log_p = np.minimum(np.asarray(log_p, np.float64), 0.0)
    log10 = log_p / math.log(10.0)
    squeeze = (lambda a: float(a)) if np.ndim(statistic) == 0 else np.asarray
    return CorrelationResult(squeeze(statistic), squeeze(np.exp(log_p)), squeeze(log10), n,
                             method, alternative, name)


def _exact_spearman_null(n: int) -> np.ndarray:
    """rho of every ordering of n untied ranks against 1..n (n! values)."""
    base = np.arange(1.0, n + 1)
    permutations = np.array(list(itertools.permutations(base)))
    return _pearson_r(np.broadcast_to(base, permutations.shape), permutations)


def _permutation_null(ranks_y: np.ndarray, ranks_x: np.ndarray, n_permutations: int,
                      seed: int, chunk: int) -> np.ndarray:
    """rho of x's ranks against B random orderings of y's ranks, batched in JAX; (..., B)."""
    import jax
    import jax.numpy as jnp

    key = jax.random.key(seed)
    xc = jnp.asarray(ranks_x - ranks_x.mean(axis=-1, keepdims=True))
    yc = jnp.asarray(ranks_y - ranks_y.mean(axis=-1, keepdims=True))
    scale = jnp.sqrt(jnp.sum(xc * xc, -1) * jnp.sum(yc * yc, -1))[..., None]

    @jax.jit
    def block(keys):
        shuffled = jax.vmap(lambda k: jax.random.permutation(k, yc, axis=-1))(keys)
        return jnp.moveaxis(jnp.sum(xc * shuffled, axis=-1), 0, -1) / scale

    keys = jax.random.split(key, n_permutations)
    return np.concatenate([np.asarray(block(keys[i:i + chunk]))
                           for i in range(0, n_permutations, chunk)], axis=-1)


def spearman(x, y, *, method: str = "asymptotic", alternative: str = "greater", axis: int = -1,
             n_permutations: int = 10_000, seed: int = 0,
             chunk: int = 256) -> CorrelationResult:
    """Spearman's rank correlation of x and y along `axis` with a p-value.

    Args:
        x, y: arrays (..., n) (numpy or JAX); leading axes (e.g. models) are batched.
        method: "asymptotic", "exact" (n <= 9, no ties assumed) or "permutation".
        alternative: "greater" (positive association, the provenance direction), "less" or
            "two-sided".
        n_permutations, seed, chunk: the permutation test's size, PRNG seed and batch size.
    """
    _check_choice("method", method, METHODS)
    _check_choice("alternative", alternative, ALTERNATIVES)
    x, y = _as_pair(x, y, axis)
    n = x.shape[-1]
    ranks_x, ranks_y = rankdata(x), rankdata(y)
    rho = _pearson_r(ranks_x, ranks_y)
    if method == "asymptotic":
        return _result("spearman", rho, _log_tail_t(rho, n, alternative), n, method, alternative)
    if method == "exact":
        if n > EXACT_MAX_N:
            raise ValueError(f"method='exact' enumerates n! orderings and needs n <= "
                             f"{EXACT_MAX_N}; got n={n}; use 'asymptotic' or 'permutation'")
        null = _exact_spearman_null(n)
        log_p = np.log(_tail_count(rho, null, alternative) / len(null))
        return _result("spearman", rho, log_p, n, method, alternative)
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations!r} must be a positive integer")
    null = _permutation_null(*np.broadcast_arrays(ranks_y, ranks_x), n_permutations, seed, chunk)
    return _result("spearman", rho, _log_permutation_p(rho, null, alternative), n, method,
                   alternative)


def _tail_count(observed: np.ndarray, null: np.ndarray, alternative: str) -> np.ndarray:
    """#{null statistics at least as extreme as observed (...)}; null (..., B) or (B,)."""
    observed = np.asarray(observed)[..., None]
    tail = {"greater": null >= observed - 1e-12, "less": null <= observed + 1e-12,
            "two-sided": np.abs(null) >= np.abs(observed) - 1e-12}[alternative]
    return tail.sum(axis=-1)


def _log_permutation_p(observed: np.ndarray, null: np.ndarray, alternative: str) -> np.ndarray:
    """log of (1 + #{null at least as extreme}) / (1 + B), never below log 1/(B + 1)."""
    return np.log((1.0 + _tail_count(observed, null, alternative)) / (1.0 + null.shape[-1]))


def _dense_ranks_and_ties(x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Ranks 0, 1, ... of the distinct values along the last axis (int64) and the tie sums."""
    order, starts = _sorted_runs(x)
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
        raise ValueError(f"values must be non-negative integers, got dtype {values.dtype}")
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
    order = np.argsort(key, axis=-1, kind="stable")
    discordant = count_inversions(np.take_along_axis(np.broadcast_to(dense_y, key.shape), order,
                                                     axis=-1))
    joint = _position_in_run(_run_starts(np.take_along_axis(key, order, axis=-1))).sum(axis=-1)
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


def _kendall_exact_log_p(discordant: np.ndarray, n: int, alternative: str) -> np.ndarray:
    """log P(D' <= d) for D' Mahonian, d the tail's discordant count; two-sided doubles it."""
    cumulative, total = _mahonian_cumulative(n), n * (n - 1) // 2
    tail = {"greater": lambda d: d, "less": lambda d: total - d,
            "two-sided": lambda d: min(d, total - d)}[alternative]
    log_p = np.vectorize(lambda d: math.log(cumulative[tail(int(d))]) - math.lgamma(n + 1),
                         otypes=[np.float64])(discordant)
    return log_p + (math.log(2.0) if alternative == "two-sided" else 0.0)


def kendall(x, y, *, method: str = "asymptotic", alternative: str = "greater", axis: int = -1,
            n_permutations: int = 10_000, seed: int = 0, chunk: int = 64) -> CorrelationResult:
    """Kendall's tau-b of x and y along `axis` with a p-value, in O(n log n).

    tau_b = (n0 - n1 - n2 + n3 - 2 D) / sqrt((n0 - n1)(n0 - n2)), with n0 = n(n-1)/2 pairs, n1 /
    n2 pairs tied in x / y, n3 tied in both and D discordant pairs (inversions of y after sorting
    by (x, y)). "asymptotic": S = n0 - n1 - n2 + n3 - 2D is normal with the tie-corrected
    variance [v0 - vx - vy] / 18 + Sx1 Sy1 / (2 n (n-1)) + Sx2 Sy2 / (9 n (n-1)(n-2)).
    "exact": D follows the Mahonian distribution (n <= 100, no ties). "permutation": y is
    reordered by B seeded random permutations (shared by all models), batched in chunks.
    """
    _check_choice("method", method, METHODS)
    _check_choice("alternative", alternative, ALTERNATIVES)
    x, y = _as_pair(x, y, axis)
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
        return _result("kendall", tau, log_p, n, method, alternative)
    if method == "exact":
        if n > KENDALL_EXACT_MAX_N or np.any(ties_x["pairs"] + ties_y["pairs"] > 0):
            raise ValueError(f"method='exact' for kendall needs n <= {KENDALL_EXACT_MAX_N} and "
                             f"no ties; got n={n}; use 'asymptotic' or 'permutation'")
        return _result("kendall", tau, _kendall_exact_log_p(discordant, n, alternative), n,
                       method, alternative)
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    null = []
    for start in range(0, n_permutations, chunk):
        size = min(chunk, n_permutations - start)
        orderings = rng.permuted(np.broadcast_to(np.arange(n), (size, n)), axis=-1)
        shuffled_y = np.take(dense_y, orderings, axis=-1)
        null_discordant, null_joint = _kendall_counts(dense_x[..., None, :], shuffled_y)
        null.append((untied[..., None] + null_joint - 2 * null_discordant)
                    / denominator[..., None])
    return _result("kendall", tau, _log_permutation_p(tau, np.concatenate(null, -1), alternative),
                   n, method, alternative)


def pearson(x, y, *, alternative: str = "greater", axis: int = -1) -> CorrelationResult:
    """Pearson's correlation with the Student-t p-value (n - 2 degrees of freedom)."""
    _check_choice("alternative", alternative, ALTERNATIVES)
    x, y = _as_pair(x, y, axis)
    r = _pearson_r(x, y)
    n = x.shape[-1]
    return _result("pearson", r, _log_tail_t(r, n, alternative), n, "asymptotic", alternative)
