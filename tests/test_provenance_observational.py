"""provenance.observational: span index vs brute force, order-test calibration, retrain p-values."""

import numpy as np
import pytest
from scipy import stats

from provenance import observational as obs
from provenance import retrain
from provenance.stats import spearman


def brute_force(examples, texts, min_length, max_length, weight="count", count="occurrences"):
    """Scores and longest-match lengths from a Python dict of span tuples (the definition)."""
    where = {}
    for j, example in enumerate(examples):
        for length in range(min_length, max_length + 1):
            for i in range(len(example) - length + 1):
                where.setdefault(tuple(example[i:i + length]), []).append(j)
    scores, lengths = np.zeros(len(examples)), []
    for text in texts:
        for i in range(len(text)):
            best = max([length for length in range(min_length, max_length + 1)
                        if i + length <= len(text) and tuple(text[i:i + length]) in where],
                       default=0)
            lengths.append(best)
            if best:
                hits = where[tuple(text[i:i + best])]
                for j in (set(hits) if count == "examples" else hits):
                    scores[j] += 1.0 if weight == "count" else best
    return scores, np.array(lengths), where


def random_corpus(rng, n_examples=25, vocab=4, max_example=14):
    examples = [rng.integers(0, vocab, rng.integers(0, max_example)) for _ in range(n_examples)]
    examples[0] = rng.integers(0, vocab, 5)  # at least one token
    texts = [rng.integers(0, vocab, rng.integers(1, 30)) for _ in range(3)]
    texts.append(examples[3][1:])  # a copied span
    return examples, [t for t in texts if len(t)]


@pytest.mark.parametrize("modulus", [None, 3, 2])
@pytest.mark.parametrize("seed", range(4))
def test_index_and_scores_equal_brute_force_including_forced_collisions(modulus, seed):
    """Longest matches, distinct spans per length and scores equal the set-of-tuples definition,
    also when a modulus of 2 or 3 makes most distinct spans share a hash (exact verification)."""
    rng = np.random.default_rng(seed)
    examples, texts = random_corpus(rng)
    min_length, max_length = 1 + seed % 2, 5
    index = obs.build_span_index(examples, min_length=min_length, max_length=max_length,
                                 modulus=modulus, seed=seed)
    for weight in ("count", "length"):
        for count in ("occurrences", "examples"):
            expected, lengths, where = brute_force(examples, texts, min_length, max_length,
                                                   weight, count)
            np.testing.assert_array_equal(
                obs.span_overlap_scores(index, texts, weight=weight, count=count), expected)
    np.testing.assert_array_equal(obs.longest_matches(index, texts)[0], lengths)
    for length in range(min_length, max_length + 1):
        distinct = sum(1 for span in where if len(span) == length)
        assert len(index.tables[length - min_length].group_keys) == distinct


def test_empty_examples_and_float_empty_arrays_are_allowed():
    """An empty example (even np.array([]), float64) neither breaks nor upcasts the token ids."""
    index = obs.build_span_index([np.array([1, 2, 3]), np.array([]), np.array([2, 3])])
    assert index.tokens.dtype == np.int64 and index.n_examples == 3
    np.testing.assert_array_equal(obs.span_overlap_scores(index, np.array([2, 3])), [1, 0, 1])


def test_flat_tokens_with_offsets_equal_list_input():
    """A flat array plus offsets describes the same corpus and text as lists of arrays."""
    rng = np.random.default_rng(7)
    examples, texts = random_corpus(rng)
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in examples])])
    text_offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])])
    flat = obs.build_span_index(np.concatenate(examples), offsets=offsets)
    listed = obs.build_span_index(examples)
    np.testing.assert_array_equal(
        obs.span_overlap_scores(flat, np.concatenate(texts), offsets=text_offsets),
        obs.span_overlap_scores(listed, texts))


def test_scores_on_a_hand_made_example():
    """Bob [1 2 3 7 5 6 7 1 2 3] against three examples, worked out by hand: positions 0 and 7
    match [1 2 3] (example 0 only; the shorter [1 2] in example 2 does not count), positions 1
    and 8 match [2 3] (examples 0 and 1), positions 4-6 match [5 6 7 1], [6 7 1 2], [7 1 2]
    (example 2), and [3 7], [7 5], [3] match nothing."""
    examples = [np.array([1, 2, 3, 4]), np.array([2, 3, 9]), np.array([5, 6, 7, 1, 2])]
    text = np.array([1, 2, 3, 7, 5, 6, 7, 1, 2, 3])
    index = obs.build_span_index(examples, min_length=2, max_length=4)
    np.testing.assert_array_equal(obs.longest_matches(index, text)[0],
                                  [3, 2, 0, 0, 4, 4, 3, 3, 2, 0])
    np.testing.assert_array_equal(obs.span_overlap_scores(index, text), [4, 2, 3])
    np.testing.assert_array_equal(obs.span_overlap_scores(index, text, weight="length"),
                                  [3 + 2 + 3 + 2, 2 + 2, 4 + 4 + 3])
    weights = np.arange(10.0)
    np.testing.assert_array_equal(obs.span_overlap_scores(index, text, weight=weights),
                                  [0 + 1 + 7 + 8, 1 + 8, 4 + 5 + 6])
    repeated = obs.build_span_index([np.array([2, 3, 2, 3])], min_length=2, max_length=2)
    assert obs.span_overlap_scores(repeated, np.array([2, 3]))[0] == 2.0
    assert obs.span_overlap_scores(repeated, np.array([2, 3]), count="examples")[0] == 1.0


def random_tokens(rng, size, vocab=1000):
    return rng.integers(0, vocab, size)


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(3)
    examples = [random_tokens(rng, rng.integers(20, 60)) for _ in range(1500)]
    return examples, obs.build_span_index(examples, min_length=2, max_length=8)


def test_order_test_p_values_are_uniform_under_the_null(corpus):
    """Bob's text drawn independently of Alice's order: over 2000 uniformly random orders the
    one-sided asymptotic p-values pass a KS test for uniformity at the 1% level, for both weights,
    although most scores tie (many examples never match)."""
    examples, index = corpus
    rng = np.random.default_rng(4)
    text = random_tokens(rng, 3000)
    orders = np.argsort(rng.random((2000, len(examples))), axis=1).astype(np.float64)
    for weight in ("count", "length"):
        scores = obs.span_overlap_scores(index, text, weight=weight)
        assert len(np.unique(scores)) < len(scores) / 10  # heavy ties
        p = spearman(orders, np.broadcast_to(scores, orders.shape)).pvalue
        assert stats.kstest(p, "uniform").pvalue > 0.01


def test_order_test_detects_text_copying_late_examples(corpus):
    """Bob's text splices 12-token pieces of the last 20% of training examples into random text:
    p < 1e-6; the same pieces taken from random examples are not significant."""
    examples, index = corpus
    rng = np.random.default_rng(5)
    order = np.arange(len(examples))

    def text_from(sources):
        pieces = []
        for j in sources:
            start = rng.integers(0, len(examples[j]) - 12)
            pieces += [examples[j][start:start + 12], random_tokens(rng, 30)]
        return np.concatenate(pieces)

    late = obs.span_overlap_test(index, text_from(rng.integers(1200, 1500, 150)), order)
    assert late.pvalue < 1e-6 and late.statistic > 0 and late.matched_positions > 0
    assert late.n == len(examples) and "span overlap" in str(late)
    uniform = obs.span_overlap_test(index, text_from(rng.integers(0, 1500, 150)), order)
    assert uniform.pvalue > 1e-3
    permuted = obs.span_overlap_test(index, text_from(rng.integers(1200, 1500, 150)), order,
                                     method="permutation", n_permutations=200)
    assert permuted.pvalue == pytest.approx(1 / 201)


def test_by_step_correlates_step_sums_with_steps(corpus):
    """by_step=True equals scipy's Spearman of the per-step score sums against the step indices
    (the authors' partition form, 10 examples per step) and refuses unequal steps."""
    examples, index = corpus
    rng = np.random.default_rng(6)
    steps = np.repeat(np.arange(150), 10)[rng.permutation(len(examples))]
    text = np.concatenate([examples[j] for j in np.flatnonzero(steps >= 120)[:40]])
    result = obs.span_overlap_test(index, text, steps, by_step=True)
    sums = np.bincount(steps, obs.span_overlap_scores(index, text))
    expected = stats.spearmanr(np.arange(150), sums, alternative="greater")
    assert result.n == 150
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-8) and result.pvalue < 1e-6
    with pytest.raises(ValueError, match="same number of examples"):
        obs.span_overlap_test(index, text, np.minimum(np.arange(len(examples)) // 10, 140),
                              by_step=True)


def test_span_inputs_are_validated(corpus):
    examples, index = corpus
    with pytest.raises(TypeError, match="integer token ids"):
        obs.build_span_index([np.array([1.0, 2.0])])
    with pytest.raises(ValueError, match="smallest -2"):
        obs.build_span_index([np.array([1, -2])])
    with pytest.raises(ValueError, match="min_length"):
        obs.build_span_index(examples, min_length=3, max_length=2)
    with pytest.raises(ValueError, match="modulus"):
        obs.build_span_index(examples, modulus=2**40)
    with pytest.raises(ValueError, match="offsets"):
        obs.build_span_index(np.arange(5), offsets=np.array([0, 3, 2, 5]))
    with pytest.raises(ValueError, match="got 0 tokens"):
        obs.build_span_index([np.zeros(0, int)])
    text = np.concatenate(examples[:3])
    with pytest.raises(ValueError, match="order must be"):
        obs.span_overlap_test(index, text, np.arange(5))
    with pytest.raises(ValueError, match="order must be"):
        obs.span_overlap_test(index, text, np.full(len(examples), np.nan))
    with pytest.raises(ValueError, match="weight"):
        obs.span_overlap_scores(index, text, weight="likelihood")
    with pytest.raises(ValueError, match="weight array"):
        obs.span_overlap_scores(index, text, weight=np.ones(3))
    with pytest.raises(ValueError, match="count"):
        obs.span_overlap_scores(index, text, count="tokens")
    with pytest.raises(ValueError, match="same span-overlap score"):
        obs.span_overlap_test(index, np.array([10**6, 10**6 + 1]), np.arange(len(examples)))


def test_rank_p_value_equals_the_formula():
    """p = (1 + #{T_k >= T_0}) / (K + 1) on sums over any trailing shape, ties against Alice."""
    rng = np.random.default_rng(0)
    alice, copies = rng.normal(size=(3, 4)), rng.normal(size=(9, 3, 4))
    totals = copies.sum(axis=(1, 2))
    result = obs.reshuffled_rank_test(alice, copies)
    assert result.pvalue == (1 + np.sum(totals >= alice.sum())) / 10
    assert result.n_copies == 9 and result.method == "rank" and "exchangeable" in str(result)
    tied = obs.reshuffled_rank_test(1.0, np.array([1.0, 0.0, 2.0]))
    assert tied.pvalue == 3 / 4 and tied.statistic == 3
    assert obs.reshuffled_rank_test(1.0, np.array([1.0, 0.0, 2.0]), alternative="less").pvalue \
        == 3 / 4
    assert obs.reshuffled_rank_test(5.0, np.arange(4.0)).pvalue == 1 / 5
    assert obs.reshuffled_rank_test(5.0, np.arange(4.0), alternative="two-sided").pvalue == 2 / 5


def test_rank_p_value_is_uniform_under_exchangeable_nulls():
    """K + 1 exchangeable totals (a shared text effect plus i.i.d. model noise): P(p <= j/(K+1))
    equals j/(K+1) for every j within 4 binomial standard errors over 20,000 draws."""
    rng = np.random.default_rng(1)
    k, draws = 19, 20_000
    totals = rng.normal(size=(draws, 1)) * 5 + rng.standard_t(3, size=(draws, k + 1))
    p = np.array([obs.reshuffled_rank_test(t[0], t[1:]).pvalue for t in totals])
    for j in range(1, k + 1):
        level = j / (k + 1)
        assert abs(np.mean(p <= level + 1e-12) - level) < 4 * np.sqrt(level * (1 - level) / draws)


def test_z_score_matches_its_definition_and_is_calibrated():
    """z = (T_0 - mean) / sd(ddof=1); under i.i.d. normal totals the Student-t p-values are
    uniform (KS at 1%), the paper's normal reference is anti-conservative at K = 5, and a real
    model that fits Bob's text better gets a tiny p-value."""
    rng = np.random.default_rng(2)
    copies = rng.normal(size=6)
    result = obs.reshuffled_z_test(3.0, copies)
    z = (3.0 - copies.mean()) / copies.std(ddof=1)
    assert result.statistic == pytest.approx(z, rel=1e-12)
    assert result.pvalue == pytest.approx(stats.t(5).sf(z / np.sqrt(1 + 1 / 6)), rel=1e-10)
    normal = obs.reshuffled_z_test(3.0, copies, distribution="normal")
    assert normal.pvalue == pytest.approx(stats.norm.sf(z), rel=1e-10)
    totals = rng.normal(size=(2000, 6))
    p_t = [obs.reshuffled_z_test(t[0], t[1:]).pvalue for t in totals]
    p_normal = [obs.reshuffled_z_test(t[0], t[1:], distribution="normal").pvalue for t in totals]
    assert stats.kstest(p_t, "uniform").pvalue > 0.01
    assert np.mean(np.array(p_normal) < 0.05) > 0.07
    strong = obs.reshuffled_z_test(rng.normal(size=400) + 0.5, rng.normal(size=(30, 400)))
    assert strong.pvalue < 1e-6 and np.isfinite(strong.log10_pvalue)
    far = obs.reshuffled_z_test(1e6, rng.normal(size=50), distribution="normal")
    assert far.pvalue == 0.0 and far.log10_pvalue < -1e10


def test_student_t_tail_stays_finite_past_scipy_underflow():
    """Where scipy's t.logsf is finite the tail formula agrees (1e-9); far beyond, where scipy
    returns -inf, the z-test's log10 p stays finite and keeps decreasing."""
    assert retrain._log_t_sf(1e6, 49) == pytest.approx(stats.t.logsf(1e6, 49), rel=1e-9)
    assert np.isneginf(stats.t.logsf(1e12, 49))
    copies = np.random.default_rng(3).normal(size=50)
    near, far = (obs.reshuffled_z_test(x, copies).log10_pvalue for x in (1e11, 1e12))
    assert np.isfinite(far) and far < near < -400


def test_retrain_inputs_are_validated():
    with pytest.raises(ValueError, match="copies_loglik must have shape"):
        obs.reshuffled_rank_test(np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="K >= 2"):
        obs.reshuffled_z_test(0.0, np.zeros(1))
    with pytest.raises(ValueError, match="finite"):
        obs.reshuffled_rank_test(np.nan, np.zeros(3))
    with pytest.raises(ValueError, match="identical"):
        obs.reshuffled_z_test(1.0, np.ones(4))
    with pytest.raises(ValueError, match="alternative"):
        obs.reshuffled_rank_test(1.0, np.ones(4), alternative="bigger")
    with pytest.raises(ValueError, match="distribution"):
        obs.reshuffled_z_test(1.0, np.arange(4.0), distribution="cauchy")


@pytest.mark.slow
def test_scores_at_a_million_tokens_do_not_depend_on_the_hash():
    """1e6 Zipf tokens in ~4000 examples, a 1e5-token text: identical scores with two hash seeds
    and with a small single modulus (collisions in nearly every table), which verification makes
    exact; the default index builds in well under a minute."""
    import time

    rng = np.random.default_rng(8)
    tokens = np.minimum(rng.zipf(1.2, 1_000_000), 50_000) - 1
    offsets = np.append(np.arange(0, 1_000_000, 250), 1_000_000)
    text = np.minimum(rng.zipf(1.2, 100_000), 50_000) - 1
    start = time.perf_counter()
    index = obs.build_span_index(tokens, offsets=offsets, max_length=6)
    assert time.perf_counter() - start < 60
    reference = obs.span_overlap_scores(index, text)
    for options in ({"seed": 1}, {"modulus": 65_521}):
        other = obs.build_span_index(tokens, offsets=offsets, max_length=6, **options)
        np.testing.assert_array_equal(obs.span_overlap_scores(other, text), reference)
