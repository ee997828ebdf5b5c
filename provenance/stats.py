"""Rank statistics for palimpsestic provenance tests: ranks, Spearman, Kendall tau-b, Pearson.

Kuditipudi et al. (2025), the query setting: under the null (Bob's model does not derive from
Alice's), Alice's training order is a uniformly random permutation independent of Bob's
per-example log-likelihoods, so any rank correlation between the two has a known null
distribution. Every function takes numpy or JAX arrays of shape (..., n), correlates along the
last axis (a leading axis of models is batched) and needs no n^2 memory.

p-values: "asymptotic" (Student t with n - 2 degrees of freedom for Spearman / Pearson, the
tie-corrected normal approximation for Kendall), "exact" (Spearman: complete enumeration of the
n! orderings, n <= 9, ties allowed; Kendall: the Mahonian distribution of the number of
discordant pairs, n <= 100, no ties) and "permutation" (B random orderings,
p = (1 + #{null >= observed}) / (1 + B); Spearman as one batched JAX computation in chunks,
Kendall as batched numpy in chunks, because its pair counts need int64). `log10_pvalue` comes
from log-survival functions, so it stays finite far below 1e-300. Kendall's tau-b lives in
`provenance.kendall_tau` (re-exported here as `provenance.stats.kendall`); the result type
and shared checks in `provenance.correlation`.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from scipy import special

from provenance.correlation import (
    ALTERNATIVES,
    METHODS,
    CorrelationResult,
    as_floats,
    as_pair,
    check_choice,
    check_extremes,
    check_permutation_options,
    check_two_sided,
    counted_p,
    make_counted_result,
    make_result,
    require_permutation_memory,
    run_starts,
)
from provenance.kendall_tau import count_inversions, kendall

__all__ = ["ALTERNATIVES", "METHODS", "CorrelationResult", "count_inversions", "kendall",
           "pearson", "rankdata", "spearman"]

EXACT_MAX_N = 9
SPEARMAN_BLOCK_BYTES = 24  # per shuffled value: key bits, the shuffled ranks, their product


def rankdata(x, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along `axis`, ties given their average rank (O(n log n), float64)."""
    x = np.moveaxis(as_floats("x", x, keep_float32=True), axis, -1)
    return np.moveaxis(_ranks(x, "x", axis, constant_ok=True), -1, axis)


def _ranks(x: np.ndarray, name: str, axis: int, constant_ok: bool = False,
           untied: np.ndarray | None = None) -> np.ndarray:
    """Average ranks along the last axis of float64 x (..., n), checking the values.

    Row by row (numpy's along-axis gathers on 2-D arrays were measured 2x slower than per-row
    ones); each row's sorted values are gathered into its output row, then overwritten by the
    scatter of its ranks. `untied` (1.0, ..., n) may be passed in to share it between calls.
    """
    n = x.shape[-1]
    ranks = np.empty((math.prod(x.shape[:-1]), n))
    untied = np.arange(1.0, n + 1) if untied is None else untied
    for row, out in zip(x.reshape(-1, n), ranks, strict=True):
        order, sorted_ranks = _sorted_ranks(row, out, untied, name, axis, constant_ok)
        out[order] = sorted_ranks
    return ranks.reshape(x.shape)


def _sorted_ranks(row: np.ndarray, buffer: np.ndarray, untied: np.ndarray, name: str, axis: int,
                  constant_ok: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """argsort of one row (n,) and the average ranks in sorted order; `buffer` (n,) float64 is
    scratch (a float32 row's sorted values use its first half).

    One unstable argsort (ties are averaged, so their order is irrelevant) and one gather of the
    sorted values: tie groups are runs of equal neighbours, and the extremes show NaN, inf and
    constant rows. `untied` is 1..n minus a constant shift, which the average ranks keep.
    """
    order = np.argsort(row)
    values = buffer if row.dtype == buffer.dtype else buffer.view(row.dtype)[:len(row)]
    np.take(row, order, out=values, mode="clip")  # mode="raise" would buffer `out`
    check_extremes(name, values[0], values[-1], axis, constant_ok)
    starts = run_starts(values)
    if starts.all():
        return order, untied
    return order, _tied_ranks(starts, untied)


def _tied_ranks(starts: np.ndarray, untied: np.ndarray) -> np.ndarray:
    """Average ranks in sorted order from the run starts (n,) bool; only tied runs are touched.

    float32 data tie often (1e7 normal draws: ~13% of values), so the work is done on the tied
    positions alone: untied + (mean of the run's positions - own position) there.
    """
    alone = starts.copy()
    alone[:-1] &= starts[1:]  # a run of one: it starts here and the next value starts another
    tied = np.flatnonzero(~alone)
    run_first = np.flatnonzero(starts[tied])
    sizes = np.diff(np.append(run_first, len(tied)))
    ranks = untied.copy()
    ranks[tied] = np.repeat(untied[tied[run_first]] + (sizes - 1) / 2.0, sizes)
    return ranks


def _spearman_rho(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    """rho of x (..., n) and y (..., n) without placing y's ranks in original order.

    With x's centred ranks rx in original order, and y's argsort o and centred ranks sy in
    sorted order, sum_i rx_i ry_i = sum_k rx[o_k] sy_k: a gather replaces y's scatter.
    """
    n = x.shape[-1]
    centre = (n + 1) / 2.0  # average ranks have this mean exactly
    untied = np.arange(1.0, n + 1)
    rx = _ranks(x, "x", axis, untied=untied).reshape(-1, n)
    rx -= centre
    untied -= centre
    scratch = np.empty(n)
    batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    x_index = np.broadcast_to(np.arange(len(rx)).reshape(x.shape[:-1]), batch).ravel()
    y_index = np.broadcast_to(np.arange(math.prod(y.shape[:-1])).reshape(y.shape[:-1]),
                              batch).ravel()
    covariance, y_variance = np.empty(len(x_index)), {}
    for j, row in enumerate(y.reshape(-1, n)):
        order, sorted_ranks = _sorted_ranks(row, scratch, untied, "y", axis)
        y_variance[j] = _dot(sorted_ranks, sorted_ranks)
        for k in np.flatnonzero(y_index == j):
            covariance[k] = _dot(np.take(rx[x_index[k]], order, out=scratch, mode="clip"),
                                 sorted_ranks)
    x_variance = _dot(rx, rx)[x_index]
    y_variance = np.array([y_variance[j] for j in y_index])
    rho = np.clip(covariance / np.sqrt(x_variance * y_variance), -1.0, 1.0)
    return rho.reshape(batch)


def _pearson_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _centred_correlation(x - x.mean(axis=-1, keepdims=True),
                                y - y.mean(axis=-1, keepdims=True))


def _centred_correlation(xc: np.ndarray, yc: np.ndarray) -> np.ndarray:
    """sum xc yc / sqrt(sum xc^2 sum yc^2) along the last axis."""
    return np.clip(_dot(xc, yc) / np.sqrt(_dot(xc, xc) * _dot(yc, yc)), -1.0, 1.0)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum a b along the last axis: einsum, one pass without temporaries; not BLAS, whose
    threads were measured to stall on a busy machine."""
    return np.einsum("...i,...i->...", a, b)


def _log_t_sf(t: np.ndarray, dof: int) -> np.ndarray:
    """log P(T > t) for Student t, finite where scipy's logsf underflows (t >> 1).

    P(T > t) = I_x(dof/2, 1/2) / 2 with x = dof / (dof + t^2), and for small x
    log I_x(a, b) = a log x + b log(1 - x) - log a - log B(a, b) + log 2F1(a + b, 1; a + 1; x).
    """
    t = np.asarray(t, np.float64)
    with np.errstate(divide="ignore"):
        log_p = np.log(special.stdtr(dof, -t))  # stdtr's lower tail is accurate relatively
    underflow = ~np.isfinite(log_p) & (t > 0)
    if np.any(underflow):
        log_p = np.where(underflow, _log_t_sf_series(np.where(underflow, t, 1.0), dof), log_p)
    return log_p


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


def _exact_spearman_p(x: np.ndarray, y: np.ndarray, rho: np.ndarray, alternative: str,
                      two_sided: str) -> np.ndarray:
    """The fraction of all n! reorderings of y's ranks whose rho is at least as extreme; exact
    with ties too (the permutation distribution given both tie patterns)."""
    n = x.shape[-1]
    orderings = np.array(list(itertools.permutations(range(n))))
    ranks_x, ranks_y = np.broadcast_arrays(rankdata(x), rankdata(y))
    rows_x, rows_y = ranks_x.reshape(-1, n), ranks_y.reshape(-1, n)
    p = [counted_p(observed, _pearson_r(row_x, row_y[orderings]), alternative, two_sided,
                   random=False)
         for observed, row_x, row_y in zip(np.ravel(rho), rows_x, rows_y, strict=True)]
    return np.reshape(p, np.shape(rho))


def bucket_length(n: int) -> int:
    """n rounded up to m 2^e with 8 <= m < 16 (n itself below 16): at most 12.5% padding, and
    few distinct lengths, so that one compiled permutation block serves many n."""
    if n < 16:
        return n
    shift = n.bit_length() - 4
    return -(-n >> shift) << shift


@functools.cache
def _permutation_block():
    """One jitted block: rho of xc against a batch of random orderings of yc; (..., keys).

    xc, yc (..., m) are zero-padded past the first n entries (m = bucket_length(n), n traced):
    each key shuffles the element ids 0..m-1 by `rounds` stable sorts on random 31-bit keys (as
    `jax.random.permutation` does), padding ids always getting the key 2^31, so the first n
    places hold a uniform random ordering of the n real values and meet x's real values.
    """
    import jax
    import jax.numpy as jnp

    @functools.partial(jax.jit, static_argnames="rounds")
    def block(keys, xc, yc, scale, n, rounds):
        def shuffle(key):
            ids = jnp.arange(yc.shape[-1])
            for round_key in jax.random.split(key, rounds):
                bits = jax.random.bits(round_key, ids.shape, jnp.uint32) >> 1
                _, ids = jax.lax.sort_key_val(jnp.where(ids < n, bits, jnp.uint32(2**31)), ids)
            return jnp.sum(xc * yc[..., ids], axis=-1)

        return jnp.moveaxis(jax.vmap(shuffle)(keys), 0, -1) / scale

    return block


def _permutation_null(ranks_y: np.ndarray, ranks_x: np.ndarray, n_permutations: int,
                      seed: int, chunk: int) -> np.ndarray:
    """rho of x's ranks against B random orderings of y's ranks, batched in JAX; (..., B).

    Every block has `chunk` keys (the last is padded and trimmed) and every length is padded
    to `bucket_length`, so one compilation serves all blocks and later calls whose lengths
    share a bucket; `chunk` has been shrunk by the caller so that a block holds at most
    BLOCK_ELEMENTS values.
    """
    import jax

    n = ranks_x.shape[-1]
    padding = [(0, 0)] * (ranks_x.ndim - 1) + [(0, bucket_length(n) - n)]
    xc = np.pad(ranks_x - ranks_x.mean(axis=-1, keepdims=True), padding)
    yc = np.pad(ranks_y - ranks_y.mean(axis=-1, keepdims=True), padding)
    scale = np.sqrt(_dot(xc, xc) * _dot(yc, yc))[..., None]
    # as jax.random.permutation: enough rounds that equal keys are improbable (exponent 3)
    rounds = max(1, math.ceil(3 * math.log(max(2, xc.shape[-1])) / math.log(2**31)))
    blocks = -(-n_permutations // chunk)
    keys = jax.random.split(jax.random.key(seed), blocks * chunk)
    block = _permutation_block()
    null = [np.asarray(block(keys[i * chunk:(i + 1) * chunk], xc, yc, scale, n, rounds))
            for i in range(blocks)]
    return np.concatenate(null, axis=-1)[..., :n_permutations]


def spearman(x, y, *, method: str = "asymptotic", alternative: str = "greater", axis: int = -1,
             n_permutations: int = 10_000, seed: int = 0, chunk: int = 256,
             two_sided: str = "absolute") -> CorrelationResult:
    """Spearman's rank correlation of x and y along `axis` with a p-value.

    Args:
        x, y: arrays (..., n) (numpy or JAX); leading axes (e.g. models) are batched.
        method: "asymptotic", "exact" (all n! orderings, n <= 9, ties allowed) or
            "permutation".
        alternative: "greater" (positive association, the provenance direction), "less" or
            "two-sided".
        n_permutations, seed, chunk: the permutation test's size, PRNG seed and batch size.
        two_sided: the two-sided p of "exact" and "permutation": "absolute" (|null| >= |rho|)
            or "doubled" (twice the smaller one-sided p, scipy's `permutation_test`).

    p-values of "exact" and "permutation" are ratios of counts computed by one division, so
    the permutation floor is exactly 1/(B + 1). x and y may be float32 (ranked as they are,
    ties judged in float32, as scipy does) or float64.
    """
    check_choice("method", method, METHODS)
    check_choice("alternative", alternative, ALTERNATIVES)
    check_two_sided(two_sided)
    seed = check_permutation_options(n_permutations, seed, chunk)
    x, y = as_pair(x, y, axis, check_values=False, keep_float32=True)
    n = x.shape[-1]
    rho = _spearman_rho(x, y, axis)
    if method == "asymptotic":
        return make_result("spearman", rho, _log_tail_t(rho, n, alternative), n, method,
                           alternative)
    if method == "exact":
        if n > EXACT_MAX_N:
            raise ValueError(f"method='exact' enumerates n! orderings and needs n <= "
                             f"{EXACT_MAX_N}; got n={n}; use 'asymptotic' or 'permutation'")
        p = _exact_spearman_p(x, y, rho, alternative, two_sided)
        return make_counted_result("spearman", rho, p, n, method, alternative)
    models = math.prod(np.broadcast_shapes(x.shape[:-1], y.shape[:-1]))
    chunk = require_permutation_memory("spearman", models, bucket_length(n), n_permutations,
                                       chunk, SPEARMAN_BLOCK_BYTES)
    ranks_x, ranks_y = _ranks(x, "x", axis), _ranks(y, "y", axis)
    null = _permutation_null(*np.broadcast_arrays(ranks_y, ranks_x), n_permutations, seed, chunk)
    p = counted_p(rho, null, alternative, two_sided, random=True)
    return make_counted_result("spearman", rho, p, n, method, alternative)


def pearson(x, y, *, alternative: str = "greater", axis: int = -1) -> CorrelationResult:
    """Pearson's correlation with the Student-t p-value (n - 2 degrees of freedom)."""
    check_choice("alternative", alternative, ALTERNATIVES)
    x, y = as_pair(x, y, axis)
    r = _pearson_r(x, y)
    n = x.shape[-1]
    return make_result("pearson", r, _log_tail_t(r, n, alternative), n, "asymptotic", alternative)
