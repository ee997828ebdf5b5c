"""Rank statistics for palimpsestic provenance tests: ranks, Spearman, Kendall tau-b, Pearson.

Kuditipudi et al. (2025), the query setting: under the null (Bob's model does not derive from
Alice's), Alice's training order is a uniformly random permutation independent of Bob's
per-example log-likelihoods, so any rank correlation between the two has a known null
distribution. Every function takes numpy or JAX arrays of shape (..., n), correlates along the
last axis (a leading axis of models is batched) and needs no n^2 memory.

p-values: "asymptotic" (Student t with n - 2 degrees of freedom for Spearman / Pearson, the
tie-corrected normal approximation for Kendall), "exact" (Spearman, complete enumeration of the
n! orderings, n <= 9) and "permutation" (Spearman, B random orderings computed as one batched
JAX computation in chunks; p = (1 + #{null >= observed}) / (1 + B)). `log10_pvalue` comes from
log-survival functions, so it stays finite far below 1e-300.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy import special, stats

METHODS = ("asymptotic", "exact", "permutation")
ALTERNATIVES = ("greater", "less", "two-sided")
EXACT_MAX_N = 9


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
        x, y = np.broadcast_arrays(x, y)
    except ValueError:
        raise ValueError(f"x and y have shapes {x.shape} and {y.shape}, which do not "
                         f"broadcast") from None
    if x.shape[-1] < 3:
        raise ValueError(f"need at least 3 paired observations along axis {axis}, got "
                         f"{x.shape[-1]}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (found NaN or inf)")
    return x, y


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; {name} must be one of {allowed}")


def rankdata(x, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along `axis`, ties given their average rank (O(n log n), float64)."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    order = np.argsort(x, axis=-1, kind="stable")
    ordered = np.take_along_axis(x, order, axis=-1)
    n = x.shape[-1]
    new_group = np.ones(x.shape, dtype=bool)
    new_group[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    position = np.broadcast_to(np.arange(n), x.shape)
    # first and last position of each element's tie group, by forward / backward max-scans
    first = np.maximum.accumulate(np.where(new_group, position, 0), axis=-1)
    ends = np.ones(x.shape, dtype=bool)
    ends[..., :-1] = new_group[..., 1:]
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends, position, n), -1), axis=-1), -1)
    ranks = np.empty(x.shape)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=-1)
    return np.moveaxis(ranks, -1, axis)


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
        observed = rho[..., None]
        count = {"greater": np.sum(null >= observed - 1e-12, axis=-1),
                 "less": np.sum(null <= observed + 1e-12, axis=-1),
                 "two-sided": np.sum(np.abs(null) >= np.abs(observed) - 1e-12, axis=-1)}
        return _result("spearman", rho, np.log(count[alternative] / len(null)), n, method,
                       alternative)
    if not isinstance(n_permutations, int) or n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations!r} must be a positive integer")
    null = _permutation_null(ranks_y, ranks_x, n_permutations, seed, chunk)
    observed = rho[..., None]
    tail = {"greater": null >= observed - 1e-12, "less": null <= observed + 1e-12,
            "two-sided": np.abs(null) >= np.abs(observed) - 1e-12}[alternative]
    p = (1.0 + tail.sum(axis=-1)) / (1.0 + n_permutations)
    return _result("spearman", rho, np.log(p), n, method, alternative)


def pearson(x, y, *, alternative: str = "greater", axis: int = -1) -> CorrelationResult:
    """Pearson's correlation with the Student-t p-value (n - 2 degrees of freedom)."""
    _check_choice("alternative", alternative, ALTERNATIVES)
    x, y = _as_pair(x, y, axis)
    r = _pearson_r(x, y)
    n = x.shape[-1]
    return _result("pearson", r, _log_tail_t(r, n, alternative), n, "asymptotic", alternative)


def fisher_combination(pvalues, axis: int = -1) -> np.ndarray:
    """Fisher's method: combined p of independent p-values, -2 sum log p ~ chi^2(2k)."""
    p = np.asarray(pvalues, np.float64)
    if np.any((p <= 0) | (p > 1)):
        raise ValueError("pvalues must lie in (0, 1]")
    statistic = -2.0 * np.sum(np.log(p), axis=axis)
    return stats.chi2.sf(statistic, 2 * p.shape[axis])


def stouffer_combination(pvalues, axis: int = -1) -> np.ndarray:
    """Stouffer's method: combined p of independent one-sided p-values, sum z / sqrt(k)."""
    p = np.asarray(pvalues, np.float64)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("pvalues must lie in (0, 1) for Stouffer's method")
    z = special.ndtri(1.0 - p)
    return stats.norm.sf(np.sum(z, axis=axis) / math.sqrt(p.shape[axis]))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), same shape as input."""
    p = np.asarray(pvalues, np.float64).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("pvalues must lie in [0, 1]")
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.reshape(np.shape(pvalues))
