"""Longest matches and span-overlap scores against the on-disk suffix index.

Kuditipudi et al. (2025), observational setting, on `provenance.suffix_index.SuffixIndex`:
queries are vectorised binary searches over the memory-mapped suffix array, comparing at most
`max_length` tokens per step. The longest prefix of text[i:] found in the index is the longer
common prefix with the two suffixes beside text[i:]'s insertion point; the block of suffixes
[first, stop) that start with that span lies around that point, found by doubling steps and a
binary search, and its suffixes' positions name the examples. Results equal the hashed index's
(`provenance.observational`) exactly; a longest match's "group" is its block's first row.
"""

from __future__ import annotations

import numpy as np

from lazyrich.core.checks import require_memory
from provenance.sequences import as_sequences
from provenance.suffix_index import EXPAND_CHUNK, SuffixIndex

QUERY_CHUNK = 2**15  # text positions searched together: bounds the (chunk, max_length) gathers
QUERY_BYTES_PER_TOKEN = 64  # text tokens, limits, lengths, block bounds (int64 each) and keys


def _compare(index: SuffixIndex, query: np.ndarray, limit: np.ndarray,
             rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Common prefix (m,) of query[k, :limit[k]] and suffix rows[k], and whether that suffix
    sorts before the query on those tokens; query (m, max_length) int64."""
    width = query.shape[1]
    positions = index.suffixes[rows].astype(np.int64)[:, None] + np.arange(width)
    tokens = index.stream[np.minimum(positions, len(index.stream) - 1)]
    differs = (tokens != query) & (np.arange(width) < limit[:, None])
    first = np.argmax(differs, axis=1)
    found = differs[np.arange(len(rows)), first]
    common = np.where(found, first, limit)
    before = found & (tokens[np.arange(len(rows)), first] < query[np.arange(len(rows)), first])
    return common, before


def _search(index: SuffixIndex, query: np.ndarray, limit: np.ndarray, after_equal: bool,
            low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """First suffix-array row in [low, high] whose suffix sorts after the query's first `limit`
    tokens (`after_equal`) or not before them; vectorised binary search, each query dropped
    from the batch once its interval is empty."""
    low, high = low.copy(), high.copy()
    active = np.flatnonzero(low < high)
    while len(active):
        middle = (low[active] + high[active]) // 2
        common, before = _compare(index, query[active], limit[active], middle)
        right = (before | (common >= limit[active])) if after_equal else before
        low[active] = np.where(right, middle + 1, low[active])
        high[active] = np.where(right, high[active], middle)
        active = active[low[active] < high[active]]
    return low


def _gallop(index: SuffixIndex, query: np.ndarray, limit: np.ndarray, start: np.ndarray,
            after_equal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Bounds [low, high] of `_search`'s answer found by doubling steps from `start`: below it
    (the block's first row, answer <= start) or above it (its end, answer >= start). A block of
    b rows costs ~2 log2 b comparisons instead of log2 n."""
    n = index.n_tokens
    low = start.copy() if after_equal else np.zeros_like(start)
    high = np.full_like(start, n) if after_equal else start.copy()
    step = np.ones_like(start)
    active = np.arange(len(start))
    while len(active):
        probe = start[active] + step[active] - 1 if after_equal else start[active] - step[active]
        outside = (probe < 0) | (probe >= n)
        common, before = _compare(index, query[active], limit[active], np.clip(probe, 0, n - 1))
        right = (before | (common >= limit[active])) if after_equal else before
        if after_equal:  # right: the block goes on past probe
            done = outside | ~right
            high[active[done]] = np.minimum(probe[done], n)
            low[active[~done]] = probe[~done] + 1
        else:  # right: probe sorts before the block, which starts above it
            done = outside | right
            low[active[done & ~outside]] = probe[done & ~outside] + 1
            high[active[~done]] = probe[~done]
        step[active] *= 2
        active = active[~done]
    return low, high


def _span_limits(flat: np.ndarray, offsets: np.ndarray, index: SuffixIndex) -> np.ndarray:
    """Per text position, where its spans must stop: its text's end or the next token that is
    not in the index's vocabulary (ids >= the separator never occur in an example)."""
    ends = np.repeat(offsets[1:], np.diff(offsets))
    unknown = np.flatnonzero(flat >= index.separator)
    following = np.searchsorted(unknown, np.arange(len(flat)))
    after = np.append(unknown, len(flat))[following]
    return np.minimum(ends, after)


def matches(index: SuffixIndex, text, offsets=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Longest indexed span at each text position: length (0: none of >= min_length) and the
    block [first, stop) of suffix-array rows starting with it (-1, -1 where unmatched); each
    (n_text_tokens,) int64."""
    def require(n_tokens: int) -> None:
        require_memory(QUERY_BYTES_PER_TOKEN * n_tokens + 64 * QUERY_CHUNK * index.max_length,
                       f"matching {n_tokens} text tokens against the suffix index",
                       "score the text in smaller pieces")

    flat, offsets = as_sequences(text, offsets, "text", require)
    limits = _span_limits(flat, offsets, index)
    length = np.zeros(len(flat), np.int64)
    first, stop = np.full(len(flat), -1, np.int64), np.full(len(flat), -1, np.int64)
    candidates = np.flatnonzero(limits - np.arange(len(flat)) >= index.min_length)
    steps = np.arange(index.max_length)
    for start in range(0, len(candidates), QUERY_CHUNK):
        positions = candidates[start:start + QUERY_CHUNK]
        limit = np.minimum(limits[positions] - positions, index.max_length)
        query = flat[np.minimum(positions[:, None] + steps, len(flat) - 1)]
        row = _search(index, query, limit, False, np.zeros(len(positions), np.int64),
                      np.full(len(positions), index.n_tokens, np.int64))
        common = np.zeros(len(positions), np.int64)
        for neighbour in (row - 1, row):
            inside = (neighbour >= 0) & (neighbour < index.n_tokens)
            shared, _ = _compare(index, query, limit, np.clip(neighbour, 0, index.n_tokens - 1))
            common = np.maximum(common, np.where(inside, shared, 0))
        hit = common >= index.min_length
        positions, query, common, row = positions[hit], query[hit], common[hit], row[hit]
        length[positions] = common
        # the block of the match holds row - 1 or row: its ends lie below and above row
        first[positions] = _search(index, query, common, False,
                                   *_gallop(index, query, common, row, False))
        stop[positions] = _search(index, query, common, True,
                                  *_gallop(index, query, common, row, True))
    return length, first, stop


def _examples_of(index: SuffixIndex, rows: np.ndarray) -> np.ndarray:
    """Example holding the suffix at each suffix-array row."""
    positions = index.suffixes[rows].astype(np.int64)
    return np.searchsorted(index.starts, positions, side="right") - 1


def scores(index: SuffixIndex, length: np.ndarray, first: np.ndarray, stop: np.ndarray,
           weights: np.ndarray, count: str) -> np.ndarray:
    """Score (n_examples,) float64: sum_i weights_i c_j(span_i) from `matches`' blocks.

    Positions sharing a span share its block, so the weights are summed per distinct block and
    each block is expanded once, in batches of at most EXPAND_CHUNK rows (a larger block alone,
    in slices). count="examples" counts each example once per distinct span.
    """
    matched = np.flatnonzero(length > 0)
    keys, where, inverse = np.unique(first[matched] * (index.max_length + 1) + length[matched],
                                     return_index=True, return_inverse=True)
    mass = np.bincount(inverse, weights[matched], minlength=len(keys))
    keep = mass > 0
    low, high, mass = first[matched][where][keep], stop[matched][where][keep], mass[keep]
    out = np.zeros(index.n_examples)
    sizes = high - low
    large = sizes > EXPAND_CHUNK
    for block in np.flatnonzero(large):
        hits = np.zeros(index.n_examples)
        for start in range(low[block], high[block], EXPAND_CHUNK):
            rows = np.arange(start, min(start + EXPAND_CHUNK, high[block]))
            hits += np.bincount(_examples_of(index, rows), minlength=index.n_examples)
        out += mass[block] * (hits > 0 if count == "examples" else hits)
    low, high, mass, sizes = low[~large], high[~large], mass[~large], sizes[~large]
    batch = np.searchsorted(np.cumsum(sizes), np.arange(1, 1 + sizes.sum() // EXPAND_CHUNK + 1)
                            * EXPAND_CHUNK, side="right")
    for begin, end in zip(np.concatenate([[0], batch]), np.append(batch, len(sizes)),
                          strict=True):
        if begin >= end:
            continue
        part = sizes[begin:end]
        block = np.repeat(np.arange(begin, end), part)
        rows = np.repeat(low[begin:end] - (np.cumsum(part) - part), part) + np.arange(part.sum())
        example = _examples_of(index, rows)
        if count == "examples":
            pairs = np.unique(block * index.n_examples + example)
            block, example = np.divmod(pairs, index.n_examples)
        out += np.bincount(example, mass[block], minlength=index.n_examples)
    return out
