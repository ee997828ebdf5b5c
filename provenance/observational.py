"""Observational (text-only) provenance tests: span overlap and reshuffled retraining.

Kuditipudi et al. (2025), palimpsestic membership inference, observational setting: Alice sees
only text that Bob published, not Bob's model.

Span overlap (the paper's n-gram / partition test, no retraining). For each position i of Bob's
text take the longest span starting at i (at most `max_length` tokens, within Bob's text) that
occurs in Alice's examples; L_i is its length (below `min_length`: unmatched). Example j scores

    score_j = sum_i w_i * c_j(span_i),    c_j(s) = number of occurrences of s in example j

(or 1[s occurs in j], `count="examples"`), w_i = 1 (`weight="count"`, the authors' match
count), L_i (`weight="length"`) or per-position weights (e.g. Bob's token log-likelihoods). The
statistic is Spearman's rho of scores vs training order (step or batch index; ties get average
ranks), one-sided "greater" (late examples overlap more). Assumption: under H0 Alice's order is a
uniformly random permutation independent of Bob's text, and the scores depend only on contents
and Bob's text, so rho's null law is its permutation law. "permutation" is exact at any n;
"asymptotic" (Student t) stays calibrated despite the ties of mostly-zero scores (tested).

The index is numpy-vectorised: polynomial hashes of all spans of each length (one vector
operation per length, no loop over tokens) modulo two primes near 2^31 (a 62-bit key), sorted
once per length and queried with `searchsorted`. Hashes only propose candidates: each one is
verified token by token and colliding distinct spans are kept apart, so results are exact for
any modulus (the tests force collisions with moduli 2 and 3). Every function here also takes
the on-disk suffix index of `provenance.suffix_index` (~6 bytes per token instead of ~180, for
corpora of 1e8 tokens) and gives the same lengths and scores.

Reshuffled retraining (Alice reruns her last phase on K reshuffles and compares Bob's text's
likelihood under her real model with the copies) lives in `provenance.retrain`; its tests are
re-exported here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lazyrich.core.checks import check_positive_integer, check_seed, require_memory
from provenance import suffix_matches
from provenance.correlation import check_choice
from provenance.retrain import RetrainResult, reshuffled_rank_test, reshuffled_z_test
from provenance.sequences import as_sequences
from provenance.stats import CorrelationResult, spearman
from provenance.suffix_index import SuffixIndex

DEFAULT_MODULI = (2_147_483_647, 2_147_483_629)  # primes < 2^31: products stay below 2^62
WEIGHTS = ("count", "length")
COUNTS = ("occurrences", "examples")
# Peak bytes per indexed token, measured with tracemalloc (within 10% above for 1 to 17 span
# lengths): the tokens, hashes and keys of every length plus one table's sort temporaries, and
# each stored table's keys, first positions, groups and examples.
INDEX_BYTES_PER_TOKEN = 144
TABLE_BYTES_PER_TOKEN = 24
LOOKUP_BYTES_PER_TOKEN = 224  # longest_matches: hashes, candidates and matches per text token

__all__ = ["RetrainResult", "SpanIndex", "SpanOverlapResult", "build_span_index",
           "longest_matches", "reshuffled_rank_test", "reshuffled_z_test", "span_overlap_scores",
           "span_overlap_test"]


def _span_keys(tokens: np.ndarray, max_length: int, moduli: tuple, bases: tuple):
    """Yield (L, key (n_tokens,) uint64), key[i] hashing tokens[i:i+L], for L = 1..max_length.

    Horner: h_L = h_{L-1} * base + t_{i+L-1} (mod p < 2^31, so uint64 never overflows); rows
    with i + L > n_tokens hash zero padding and callers mask them."""
    n = len(tokens)
    padded = np.concatenate([tokens, np.zeros(max_length, np.int64)]).astype(np.uint64)
    reduced = [padded % np.uint64(modulus) for modulus in moduli]
    hashes = [np.zeros(n, np.uint64) for _ in moduli]
    for length in range(1, max_length + 1):
        for j, (modulus, base) in enumerate(zip(moduli, bases, strict=True)):
            hashes[j] = (hashes[j] * np.uint64(base) + reduced[j][length - 1:length - 1 + n]) \
                % np.uint64(modulus)
        key = hashes[0]
        for j in range(1, len(moduli)):
            key = key * np.uint64(moduli[j]) + hashes[j]
        yield length, key


def _differs(a: np.ndarray, left: np.ndarray, b: np.ndarray, right: np.ndarray,
             length: int) -> np.ndarray:
    """Whether span a[left:left+length] differs from b[right:right+length], per row."""
    out = np.zeros(len(left), bool)
    for m in range(length):
        out |= a[left + m] != b[right + m]
    return out


@dataclasses.dataclass(frozen=True)
class _SpanTable:
    """All spans of one length: distinct spans (groups) sorted by hash, and their occurrences."""
    group_keys: np.ndarray  # (n_groups,) uint64 sorted; equal keys are hash collisions
    group_first: np.ndarray  # (n_groups,) flat position of one occurrence of each group
    occurrence_group: np.ndarray  # (n_occurrences,) group of each occurrence
    occurrence_example: np.ndarray  # (n_occurrences,) training example of each occurrence


def _build_table(tokens, example_of, ends, key, length) -> _SpanTable:
    positions = np.flatnonzero(np.arange(len(tokens)) + length <= ends)
    keys = key[positions]
    order = np.argsort(keys, kind="stable")
    positions, keys = positions[order], keys[order]
    run_start = np.concatenate([[True], keys[1:] != keys[:-1]])[:len(keys)]  # empty: no runs
    run_id = np.cumsum(run_start) - 1
    first = positions[np.flatnonzero(run_start)][run_id]
    new_group = run_start
    collided = _differs(tokens, positions, tokens, first, length)
    if collided.any():
        # runs of one hash holding distinct spans: sort them by tokens so equal spans are adjacent
        rows = np.flatnonzero(np.isin(run_id, np.unique(run_id[collided])))
        sub = positions[rows]
        columns = [tokens[sub + m] for m in reversed(range(length))]
        positions[rows] = sub[np.lexsort([*columns, run_id[rows]])]
        new_group = run_start.copy()
        new_group[1:] |= _differs(tokens, positions[1:], tokens, positions[:-1], length)
    starts = np.flatnonzero(new_group)
    return _SpanTable(keys[starts], positions[starts], np.cumsum(new_group) - 1,
                      example_of[positions].astype(np.int32))


@dataclasses.dataclass(frozen=True)
class SpanIndex:
    """Hashed index of every span of `min_length..max_length` tokens of Alice's examples."""
    tokens: np.ndarray  # (n_tokens,) int64, the examples concatenated
    offsets: np.ndarray  # (n_examples + 1,) example j is tokens[offsets[j]:offsets[j + 1]]
    min_length: int
    max_length: int
    moduli: tuple[int, ...]
    bases: tuple[int, ...]
    tables: tuple[_SpanTable, ...]  # tables[L - min_length] holds the spans of length L
    n_examples: int


def span_index_bytes(n_tokens: int, min_length: int, max_length: int) -> int:
    """Peak bytes `build_span_index` allocates for n_tokens tokens and span lengths
    min_length..max_length (an upper estimate, from the measured bytes per token)."""
    tables = max_length - min_length + 1
    return n_tokens * (INDEX_BYTES_PER_TOKEN + TABLE_BYTES_PER_TOKEN * tables)


def build_span_index(examples, *, offsets=None, min_length: int = 2, max_length: int = 8,
                     modulus: int | None = None, seed: int = 0) -> SpanIndex:
    """Index every span of min_length..max_length tokens of Alice's training examples.

    examples: a list of 1-D integer arrays (one per example), or one flat 1-D array with `offsets`
    (n_examples + 1,), example j = examples[offsets[j]:offsets[j + 1]]. modulus: hash modulus (a
    prime < 2^31; tiny ones force collisions, for tests); None uses two primes near 2^31 (62-bit
    key). Results are exact either way. seed: seeds the random hash bases.

    Memory: about `span_index_bytes(n_tokens, min_length, max_length)`, checked against what
    this process may allocate before anything is built (`MemoryEstimateError` if it would not fit).
    """
    check_positive_integer("min_length", min_length)
    check_positive_integer("max_length", max_length)
    if max_length < min_length:
        raise ValueError(f"max_length={max_length!r} is below min_length={min_length!r}; "
                         f"need integers 1 <= min_length <= max_length")
    if modulus is not None and (isinstance(modulus, bool) or not isinstance(modulus, int)
                                or not 2 <= modulus < 2**31):
        raise ValueError(f"modulus={modulus!r} is not allowed; modulus must be an integer in "
                         f"[2, 2^31) or None")
    seed = check_seed(seed)
    moduli = DEFAULT_MODULI if modulus is None else (modulus,)

    def require(n_tokens: int) -> None:
        require_memory(span_index_bytes(n_tokens, min_length, max_length),
                       f"the span index of {n_tokens} tokens (span lengths {min_length}.."
                       f"{max_length})", f"lower max_length= (now {max_length}) or raise "
                       f"min_length= (now {min_length}), or index fewer examples")

    tokens, offsets = as_sequences(examples, offsets, "examples", require)
    rng = np.random.default_rng(seed)
    bases = tuple(int(rng.integers(1, p)) if p > 2 else 1 for p in moduli)
    example_of = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    ends = offsets[1:][example_of]
    tables = tuple(_build_table(tokens, example_of, ends, key, length)
                   for length, key in _span_keys(tokens, max_length, moduli, bases)
                   if length >= min_length)
    return SpanIndex(tokens, offsets, min_length, max_length, moduli, bases, tables,
                     len(offsets) - 1)


def _lookup(index: SpanIndex, table: _SpanTable, length: int, text: np.ndarray,
            positions: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Group of text[p:p+length] for each p in positions (-1 where the span is not indexed)."""
    low = np.searchsorted(table.group_keys, keys, "left")
    candidates = np.searchsorted(table.group_keys, keys, "right") - low
    query = np.repeat(np.arange(len(positions)), candidates)
    within = np.arange(len(query)) - np.repeat(np.cumsum(candidates) - candidates, candidates)
    group = low[query] + within
    same = ~_differs(text, positions[query], index.tokens, table.group_first[group], length)
    out = np.full(len(positions), -1, np.int64)
    out[query[same]] = group[same]
    return out


def longest_matches(index: SpanIndex | SuffixIndex, text, *,
                    offsets=None) -> tuple[np.ndarray, np.ndarray]:
    """For each position of Bob's text, the longest indexed span starting there.

    index: a `SpanIndex` (in memory) or a `SuffixIndex` (on disk); lengths are identical.
    text: Bob's token ids (one 1-D integer array, a list of them, or a flat array with `offsets`);
    spans never cross the end of one of Bob's texts. Returns length (n_text_tokens,), the longest
    match in tokens (0: none of >= min_length), and group (n_text_tokens,) identifying that span:
    its group in index.tables[length - min_length] (SpanIndex) or the first suffix-array row
    starting with it (SuffixIndex); -1 where unmatched.
    """
    if isinstance(index, SuffixIndex):
        return suffix_matches.matches(index, text, offsets)[:2]
    return _hashed_matches(index, text, offsets)


def _hashed_matches(index: SpanIndex, text, offsets) -> tuple[np.ndarray, np.ndarray]:
    def require(n_tokens: int) -> None:
        require_memory(LOOKUP_BYTES_PER_TOKEN * n_tokens, f"matching {n_tokens} text tokens "
                       f"against the span index", "score the text in smaller pieces")

    flat, offsets = as_sequences(text, offsets, "text", require)
    ends = offsets[1:][np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))]
    best_length = np.zeros(len(flat), np.int64)
    best_group = np.full(len(flat), -1, np.int64)
    alive = np.arange(len(flat))
    for length, key in _span_keys(flat, index.max_length, index.moduli, index.bases):
        if length < index.min_length:
            continue
        # a span can only match if its prefix one token shorter matched
        alive = alive[alive + length <= ends[alive]]
        table = index.tables[length - index.min_length]
        group = _lookup(index, table, length, flat, alive, key[alive])
        alive = alive[group >= 0]
        best_length[alive], best_group[alive] = length, group[group >= 0]
    return best_length, best_group


def span_overlap_scores(index: SpanIndex | SuffixIndex, text, *, offsets=None, weight="count",
                        count: str = "occurrences") -> np.ndarray:
    """Score (n_examples,) float64 of each training example: sum_i w_i c_j(span_i).

    weight: "count" (w_i = 1 per matched position), "length" (w_i = L_i tokens) or an array
    (n_text_tokens,) of non-negative finite per-position weights. count: "occurrences" (c_j =
    occurrences of span_i in example j) or "examples" (c_j = 1 if it occurs in example j).
    """
    return _overlap(index, text, offsets, weight, count)[0]


def _overlap(index: SpanIndex | SuffixIndex, text, offsets, weight,
             count: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n_examples,), longest-match length per text position)."""
    check_choice("count", count, COUNTS)
    if isinstance(index, SuffixIndex):
        length, first, stop = suffix_matches.matches(index, text, offsets)
    else:
        length, group = _hashed_matches(index, text, offsets)
    if isinstance(weight, str):
        check_choice("weight", weight, WEIGHTS)
        weights = np.ones(len(length)) if weight == "count" else length.astype(np.float64)
    else:
        weights = np.asarray(weight, np.float64)
        if weights.shape != length.shape or not np.all(np.isfinite(weights) & (weights >= 0)):
            raise ValueError(f"weight array must be non-negative, finite and of shape "
                             f"{length.shape} (one per text token), got shape {weights.shape}")
    if isinstance(index, SuffixIndex):
        return suffix_matches.scores(index, length, first, stop, weights, count), length
    scores = np.zeros(index.n_examples)
    for offset, table in enumerate(index.tables):
        chosen = length == index.min_length + offset
        mass = np.bincount(group[chosen], weights[chosen], minlength=len(table.group_keys))
        hit = np.flatnonzero(mass[table.occurrence_group] > 0)
        occurrence_group = table.occurrence_group[hit]
        occurrence_example = table.occurrence_example[hit].astype(np.int64)
        if count == "examples":
            pairs = np.unique(occurrence_group * index.n_examples + occurrence_example)
            occurrence_group, occurrence_example = np.divmod(pairs, index.n_examples)
        scores += np.bincount(occurrence_example, mass[occurrence_group],
                              minlength=index.n_examples)
    return scores, length


@dataclasses.dataclass(frozen=True)
class SpanOverlapResult:
    """The span-overlap order test: Spearman of scores vs order, plus the scores themselves."""
    correlation: CorrelationResult
    scores: np.ndarray  # (n_examples,)
    matched_positions: int  # positions of Bob's text with a match of >= min_length tokens

    statistic = property(lambda self: self.correlation.statistic)
    pvalue = property(lambda self: self.correlation.pvalue)
    log10_pvalue = property(lambda self: self.correlation.log10_pvalue)
    n = property(lambda self: self.correlation.n)
    method = property(lambda self: self.correlation.method)
    alternative = property(lambda self: self.correlation.alternative)

    def __str__(self) -> str:
        return f"span overlap ({self.matched_positions} matched positions): {self.correlation}"


def span_overlap_test(index: SpanIndex | SuffixIndex, text, order, *, offsets=None, weight="count",
                      count: str = "occurrences", by_step: bool = False, method: str =
                      "asymptotic", alternative: str = "greater",
                      **spearman_options) -> SpanOverlapResult:
    """Test whether Bob's text overlaps Alice's late training examples more than early ones.

    order: (n_examples,) training step or batch index of each example (ties allowed). by_step:
    correlate the per-step sums of scores with the distinct steps (the authors' partition form;
    needs equally many examples per step) instead of per-example scores with order. method,
    alternative, spearman_options: passed to `provenance.stats.spearman`.
    """
    order = np.asarray(order)
    if order.shape != (index.n_examples,) or not np.issubdtype(order.dtype, np.number) \
            or not np.all(np.isfinite(order)):
        raise ValueError(f"order must be finite numbers of shape ({index.n_examples},) (one "
                         f"per indexed example), got shape {order.shape}, dtype {order.dtype}")
    scores, length = _overlap(index, text, offsets, weight, count)
    if np.all(scores == scores[0]):
        raise ValueError(f"every training example has the same span-overlap score "
                         f"({scores[0]}): no span of >= {index.min_length} tokens of the text "
                         f"discriminates between examples, so there is nothing to correlate")
    statistic_order, statistic_scores = order.astype(np.float64), scores
    if by_step:
        statistic_order, step_of = np.unique(order, return_inverse=True)
        if np.ptp(np.bincount(step_of)) != 0:
            raise ValueError("by_step=True needs the same number of examples in every step "
                             "(else step sums trend with step size); use by_step=False")
        statistic_scores = np.bincount(step_of, scores)
    correlation = spearman(statistic_order, statistic_scores, method=method,
                           alternative=alternative, **spearman_options)
    return SpanOverlapResult(correlation, scores, int(np.count_nonzero(length)))
