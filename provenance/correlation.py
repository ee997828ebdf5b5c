"""What every rank correlation of `provenance` shares: the result type, argument checks and the
permutation p-value.

Kuditipudi et al. (2025): Spearman (`provenance.stats`) and Kendall (`provenance.kendall_tau`)
correlate Bob's per-example scores with Alice's training order on one interface. Both modules
import from here and neither imports the other's internals, so the package has no import circle.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from lazyrich.core.checks import check_positive_integer, check_seed, require_memory

METHODS = ("asymptotic", "exact", "permutation")
ALTERNATIVES = ("greater", "less", "two-sided")
TWO_SIDED = ("absolute", "doubled")  # two-sided p of exact / permutation methods
BLOCK_ELEMENTS = 2**22  # permutation blocks: at most this many (models x B x n) values
NULL_COPIES = 2  # the null's blocks and their concatenation are alive together


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


def as_floats(name: str, values, keep_float32: bool = False) -> np.ndarray:
    """values as a float64 array (float32 ones kept as they are if `keep_float32`: ranks need
    only their order, and a float64 copy costs a pass), or a TypeError naming the argument."""
    try:
        if keep_float32 and getattr(values, "dtype", None) == np.float32:
            return np.asarray(values)
        return np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of real numbers, got {values!r:.80}") from None


def as_pair(x, y, axis: int, check_values: bool = True,
            keep_float32: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """x, y as float64 (or float32, see `as_floats`) with the paired axis last; shapes checked,
    values too if asked."""
    x, y = (np.moveaxis(as_floats(name, values, keep_float32), axis, -1)
            for name, values in (("x", x), ("y", y)))
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
    if check_values:
        for name, values in (("x", x), ("y", y)):
            check_extremes(name, values.min(axis=-1), values.max(axis=-1), axis)
    return x, y


def check_extremes(name: str, smallest, largest, axis: int, constant_ok: bool = False) -> None:
    """Finite and not constant, judged from each row's smallest and largest value (NaN or inf
    show there: argsort puts NaN last, and min / max propagate it)."""
    if not (np.all(np.isfinite(smallest)) and np.all(np.isfinite(largest))):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    if not constant_ok and np.any(smallest == largest):
        raise ValueError(f"{name} is constant along axis {axis} (for at least one model); "
                         f"a correlation with a constant is undefined")


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise ValueError unless `value` is one of the strings `allowed`, naming the argument."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; {name} must be one of {allowed}")


def sorted_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argsort of x (..., n) along the last axis, and where runs of equal sorted values start."""
    order = np.argsort(x, axis=-1)
    return order, run_starts(np.take_along_axis(x, order, axis=-1))


def run_starts(ordered: np.ndarray) -> np.ndarray:
    """True where a run of equal values begins in a sorted array (..., n)."""
    starts = np.ones(ordered.shape, dtype=bool)
    np.not_equal(ordered[..., 1:], ordered[..., :-1], out=starts[..., 1:])
    return starts


def make_result(name, statistic, log_p, n, method, alternative) -> CorrelationResult:
    """A result from the natural log of p (asymptotic tails, finite far below 1e-308)."""
    log_p = np.minimum(np.asarray(log_p, np.float64), 0.0)
    return _result(name, statistic, np.exp(log_p), log_p / math.log(10.0), n, method,
                   alternative)


def make_counted_result(name, statistic, pvalue, n, method, alternative) -> CorrelationResult:
    """A result from a p-value that is a ratio of counts (exact and permutation methods): kept
    as the one correctly rounded division, so 1/(B + 1) is exactly what `p <= alpha` expects."""
    pvalue = np.minimum(np.asarray(pvalue, np.float64), 1.0)
    return _result(name, statistic, pvalue, np.log10(pvalue), n, method, alternative)


def _result(name, statistic, pvalue, log10, n, method, alternative) -> CorrelationResult:
    squeeze = (lambda a: float(a)) if np.ndim(statistic) == 0 else np.asarray
    return CorrelationResult(squeeze(statistic), squeeze(pvalue), squeeze(log10), n, method,
                             alternative, name)


def tail_count(observed: np.ndarray, null: np.ndarray, alternative: str) -> np.ndarray:
    """#{null statistics at least as extreme as observed (...)}; null (..., B) or (B,).

    Null values equal to the observed one (ties, small n) must count; a float32 null (JAX
    without x64) carries rounding errors up to ~1e-7 sqrt(n) in rho, so its tolerance is 1e-6:
    conservative by at most P(|null - observed| < 1e-6), negligible against rho's null spread.
    """
    tolerance = 1e-12 if null.dtype == np.float64 else 1e-6
    observed = np.asarray(observed)[..., None]
    tail = {"greater": null >= observed - tolerance, "less": null <= observed + tolerance,
            "two-sided": np.abs(null) >= np.abs(observed) - tolerance}[alternative]
    return tail.sum(axis=-1)


def counted_p(observed: np.ndarray, null: np.ndarray, alternative: str, two_sided: str,
              random: bool) -> np.ndarray:
    """p-value from a null sample (..., B): (1 + #{at least as extreme}) / (1 + B) for B
    `random` permutations (never below 1/(B + 1)), #{...} / B for all B orderings (exact).

    Two-sided: "absolute" counts |null| >= |observed|; "doubled" is scipy's
    `permutation_test` convention, twice the smaller one-sided p (capped at 1). They agree for
    a symmetric null; with ties at small n they can differ (see the README).
    """
    plus = 1 if random else 0
    total = null.shape[-1] + plus
    if alternative == "two-sided" and two_sided == "doubled":
        smaller = np.minimum(tail_count(observed, null, "greater"),
                             tail_count(observed, null, "less"))
        return np.minimum(1.0, 2.0 * (smaller + plus) / total)
    return (tail_count(observed, null, alternative) + plus) / total


def check_two_sided(two_sided: str) -> None:
    check_choice("two_sided", two_sided, TWO_SIDED)


def check_permutation_options(n_permutations, seed, chunk) -> int:
    """Refuse a bad permutation-test size, seed or chunk (whatever the method); returns the seed."""
    check_positive_integer("n_permutations", n_permutations)
    check_positive_integer("chunk", chunk)
    return check_seed(seed)


def require_permutation_memory(statistic: str, models: int, n: int, n_permutations: int,
                               chunk: int, bytes_per_block_value: int) -> int:
    """Refuse a permutation null that would not fit, before drawing it; returns the chunk used.

    Peak: the null (models, B) float64 twice (blocks and their concatenation) plus one block of
    `chunk` permutations of every model's n values, `bytes_per_block_value` bytes each (the
    shuffled copies and the temporaries of one block), where a block holds at most
    BLOCK_ELEMENTS values.
    """
    chunk = max(1, min(chunk, BLOCK_ELEMENTS // max(1, models * n)))
    estimate = (NULL_COPIES * 8 * models * n_permutations
                + bytes_per_block_value * chunk * models * n)
    require_memory(estimate, f"the {statistic} permutation null ({models} model(s) x "
                   f"n_permutations={n_permutations} orderings of n={n} values)",
                   f"lower n_permutations= (now {n_permutations}) or use "
                   f"method='asymptotic'")
    return chunk
