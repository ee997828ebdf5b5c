"""provenance.stats against scipy.stats and brute-force enumeration."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import provenance


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 200))
    y = 0.2 * x + rng.normal(size=(3, 200))
    y[:, :40] = np.round(y[:, :40])  # ties
    return x, y


def test_rankdata_matches_scipy_with_ties(data):
    _, y = data
    np.testing.assert_allclose(provenance.rankdata(y), stats.rankdata(y, axis=-1))
    np.testing.assert_allclose(provenance.rankdata(y.T, axis=0), stats.rankdata(y.T, axis=0))


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_spearman_and_pearson_match_scipy_for_every_model(data, alternative):
    x, y = data
    ours = provenance.spearman(x, y, alternative=alternative)
    theirs = stats.spearmanr(x[1], y[1], alternative=alternative)
    assert ours.statistic[1] == pytest.approx(theirs.statistic, rel=1e-12)
    assert ours.pvalue[1] == pytest.approx(theirs.pvalue, rel=1e-8)
    assert ours.n == 200 and ours.statistic.shape == (3,)
    r = provenance.pearson(x[2], y[2], alternative=alternative)
    reference = stats.pearsonr(x[2], y[2], alternative=alternative)
    assert r.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert r.pvalue == pytest.approx(reference.pvalue, rel=1e-8)


def test_exact_spearman_equals_brute_force_enumeration():
    x = np.array([1.0, 2, 3, 4, 5, 6])
    y = np.array([2.0, 1, 4, 3, 6, 5])
    rho = stats.spearmanr(x, y).statistic
    null = [stats.spearmanr(x, p).statistic for p in itertools.permutations(y)]
    expected = np.mean(np.array(null) >= rho - 1e-12)
    result = provenance.spearman(x, y, method="exact")
    assert result.pvalue == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="n <= 9"):
        provenance.spearman(np.arange(12.0), np.arange(12.0), method="exact")


def test_permutation_p_value_is_calibrated_and_agrees_with_asymptotic(data):
    x, y = data
    permuted = provenance.spearman(x, y, method="permutation", n_permutations=4000)
    asymptotic = provenance.spearman(x, y)
    np.testing.assert_allclose(permuted.pvalue, asymptotic.pvalue, atol=0.02)
    rng = np.random.default_rng(1)
    null = provenance.spearman(rng.normal(size=(200, 30)), rng.normal(size=(200, 30)),
                               method="permutation", n_permutations=200)
    assert 0.35 < float(np.mean(null.pvalue)) < 0.65


def test_log10_pvalue_stays_finite_far_below_1e_300():
    rng = np.random.default_rng(2)
    x = rng.normal(size=5000)
    result = provenance.spearman(x, x + 0.05 * rng.normal(size=5000))
    assert result.pvalue == 0.0 and np.isfinite(result.log10_pvalue)
    assert result.log10_pvalue < -300
    perfect = provenance.spearman(x, x)
    assert np.isfinite(perfect.log10_pvalue) and perfect.log10_pvalue < result.log10_pvalue
    assert "spearman" in str(result) and "log10 p" in str(result)


def test_log_tail_matches_scipy_where_scipy_is_finite():
    """The series used beyond scipy's range equals scipy's log-survival where both exist."""
    from provenance.stats import _log_t_sf_series

    t = np.array([0.5, 5.0, 20.0, 80.0])
    np.testing.assert_allclose(_log_t_sf_series(t, 30), stats.t.logsf(t, 30), rtol=1e-9)


def test_combinations_and_holm():
    p = np.array([0.01, 0.2, 0.04])
    assert provenance.combine_pvalues(p, "stouffer") == provenance.stouffer_combination(p)
    with pytest.raises(ValueError, match="method='tippett'"):
        provenance.combine_pvalues(p, "tippett")
    assert provenance.fisher_combination(p) == pytest.approx(
        stats.combine_pvalues(p, method="fisher").pvalue, rel=1e-10)
    assert provenance.stouffer_combination(p) == pytest.approx(
        stats.combine_pvalues(p, method="stouffer").pvalue, rel=1e-10)
    np.testing.assert_allclose(provenance.holm(p), [0.03, 0.2, 0.08])


@pytest.mark.parametrize("call,fragment", [
    (lambda: provenance.spearman([1, 2], [1, 2]), "at least 3"),
    (lambda: provenance.spearman([1, 2, np.nan], [1, 2, 3]), "finite"),
    (lambda: provenance.spearman([1, 2, 3], [1, 2, 3], method="magic"), "method='magic'"),
    (lambda: provenance.pearson([1, 2, 3], [3, 2, 1], alternative="up"), "alternative='up'"),
    (lambda: provenance.spearman(np.ones((2, 5)), np.ones((3, 5))), "do not broadcast"),
    (lambda: provenance.holm([0.5, 1.5]), "pvalues"),
    (lambda: provenance.spearman([1, 1, 1, 1], [1, 2, 3, 4]), "x is constant"),
    (lambda: provenance.kendall([1, 2, 3, 4], np.ones((2, 4))), "y is constant"),
    (lambda: provenance.kendall(np.ones(4), np.ones(5)), "do not broadcast"),
    (lambda: provenance.kendall(np.arange(5.0), [1, 2, 2, 3, 4], method="exact"), "no ties"),
    (lambda: provenance.kendall(np.arange(5.0), np.arange(5.0), method="permutation",
                                n_permutations=0), "n_permutations"),
    (lambda: provenance.count_inversions([0.5, 1.0]), "non-negative integers"),
])
def test_bad_input(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def brute_force_kendall(x, y):
    """tau-b from an O(n^2) loop over all pairs (independent of the O(n log n) code)."""
    concordant = discordant = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            sign = np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
            concordant += sign > 0
            discordant += sign < 0
            tied_x += x[i] == x[j]
            tied_y += y[i] == y[j]
    pairs = len(x) * (len(x) - 1) / 2
    return (concordant - discordant) / np.sqrt((pairs - tied_x) * (pairs - tied_y))


def test_count_inversions_equals_brute_force_loop():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 33, 100):
        values = rng.integers(0, 9, size=(3, n))
        expected = [sum(int(row[i] > row[j]) for i in range(n) for j in range(i + 1, n))
                    for row in values]
        np.testing.assert_array_equal(provenance.count_inversions(values), expected)


def test_kendall_equals_brute_force_on_small_tied_data():
    rng = np.random.default_rng(4)
    for n in (3, 5, 12, 40):
        x, y = rng.integers(0, 4, size=n).astype(float), rng.integers(0, 3, size=n)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert provenance.kendall(x, y).statistic == pytest.approx(brute_force_kendall(x, y),
                                                                   abs=1e-14)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_kendall_matches_scipy_with_ties_for_every_model(data, alternative):
    """Statistic to 1e-12 and the tie-corrected asymptotic p-value to 1e-9 relative."""
    x, y = data
    x = np.round(x, 1)  # ties in both x and y
    ours = provenance.kendall(x, y, alternative=alternative)
    for model in range(3):
        theirs = stats.kendalltau(x[model], y[model], alternative=alternative)
        assert ours.statistic[model] == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.pvalue[model] == pytest.approx(theirs.pvalue, rel=1e-9)
    shared = provenance.kendall(x[0], y, alternative=alternative)  # one order, three models
    assert shared.statistic[2] == pytest.approx(
        stats.kendalltau(x[0], y[2], alternative=alternative).statistic, abs=1e-12)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_kendall_exact_matches_scipy_and_enumeration(alternative):
    rng = np.random.default_rng(5)
    x = rng.normal(size=40)
    y = x + 2 * rng.normal(size=40)
    ours = provenance.kendall(x, y, method="exact", alternative=alternative)
    theirs = stats.kendalltau(x, y, method="exact", alternative=alternative)
    assert ours.pvalue == pytest.approx(theirs.pvalue, rel=1e-10)
    small_x, small_y = np.arange(7.0), np.array([3.0, 0, 1, 5, 2, 6, 4])
    tau = brute_force_kendall(small_x, small_y)
    null = np.array([brute_force_kendall(small_x, np.array(p))
                     for p in itertools.permutations(small_y)])
    tail = {"greater": null >= tau - 1e-12, "less": null <= tau + 1e-12,
            "two-sided": np.abs(null) >= abs(tau) - 1e-12}[alternative]
    exact = provenance.kendall(small_x, small_y, method="exact", alternative=alternative)
    assert exact.pvalue == pytest.approx(tail.mean(), rel=1e-12)


def test_kendall_permutation_agrees_with_asymptotic_and_is_bounded(data):
    x, y = data
    permuted = provenance.kendall(x, y, method="permutation", n_permutations=2000)
    asymptotic = provenance.kendall(x, y)
    np.testing.assert_allclose(permuted.pvalue, asymptotic.pvalue, atol=0.03)
    assert np.all(permuted.pvalue >= 1 / 2001)
    strong = provenance.kendall(x[0], x[0] + 0.01 * y[0], method="permutation",
                                n_permutations=99)
    assert strong.pvalue == pytest.approx(1 / 100)


def test_kendall_log10_pvalue_finite_far_below_1e_300():
    rng = np.random.default_rng(6)
    x = rng.normal(size=20_000)
    result = provenance.kendall(x, x + 0.05 * rng.normal(size=20_000))
    assert result.pvalue == 0.0 and -1e6 < result.log10_pvalue < -300


def test_spearman_broadcasts_models_on_either_side(data):
    """(2, 1, n) against (1, 3, n) gives the 2 x 3 table of scipy's rho (ties in y)."""
    x, y = data
    table = provenance.spearman(x[:2, None, :], y[None, :, :]).statistic
    expected = [[stats.spearmanr(a, b).statistic for b in y] for a in x[:2]]
    np.testing.assert_allclose(table, expected, atol=1e-12)
    shared_y = provenance.spearman(x, y[0]).statistic
    np.testing.assert_allclose(shared_y, [stats.spearmanr(a, y[0]).statistic for a in x],
                               atol=1e-12)
    np.testing.assert_allclose(provenance.spearman(x.T, y.T, axis=0).statistic,
                               provenance.spearman(x, y).statistic, atol=1e-15)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_exact_spearman_with_ties_equals_enumeration_for_two_models(alternative):
    """Ties in both x and y: the exact p is the fraction of the 7! reorderings of y as extreme
    (null computed with scipy's rankdata and numpy's corrcoef over all reorderings)."""
    x = np.array([1.0, 2, 2, 3, 5, 5, 6])
    y = np.array([[1.0, 1, 2, 4, 3, 6, 6], [3.0, 1, 2, 2, 5, 4, 7]])
    result = provenance.spearman(x, y, method="exact", alternative=alternative)
    ranks_x = stats.rankdata(x)
    for model in range(2):
        rho = stats.spearmanr(x, y[model]).statistic
        reordered = stats.rankdata(np.array(list(itertools.permutations(y[model]))), axis=-1)
        null = np.corrcoef(np.vstack([ranks_x, reordered]))[0, 1:]
        tail = {"greater": null >= rho - 1e-12, "less": null <= rho + 1e-12,
                "two-sided": np.abs(null) >= abs(rho) - 1e-12}[alternative]
        assert result.pvalue[model] == pytest.approx(tail.mean(), rel=1e-12)


def test_kendall_exact_and_asymptotic_agree_at_moderate_n():
    """n = 60 untied: the normal approximation (no continuity correction) is within 0.01 of the
    exact Mahonian p (measured: 0.003 one-sided, 0.006 two-sided)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 60))
    y = 0.3 * x + rng.normal(size=(20, 60))
    for alternative in ("greater", "two-sided"):
        exact = provenance.kendall(x, y, method="exact", alternative=alternative).pvalue
        asymptotic = provenance.kendall(x, y, alternative=alternative).pvalue
        np.testing.assert_allclose(asymptotic, exact, atol=0.01)


def test_jax_inputs_and_float64_permutation_null(x64):
    """JAX arrays in, same numbers out; under x64 the permutation null is float64 and p stays
    within [1/(B + 1), 1]."""
    import jax.numpy as jnp

    rng = np.random.default_rng(8)
    x, y = rng.normal(size=50), rng.normal(size=50)
    ours = provenance.spearman(jnp.asarray(x), jnp.asarray(y))
    assert ours.statistic == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    permuted = provenance.spearman(x, y, method="permutation", n_permutations=99, chunk=40)
    assert 1 / 100 <= permuted.pvalue <= 1.0
    assert permuted.pvalue == pytest.approx(ours.pvalue, abs=0.15)
    perfect = provenance.spearman(x, x, method="permutation", n_permutations=99)
    assert perfect.pvalue == pytest.approx(1 / 100)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=3, max_size=25))
def test_fuzzed_kendall_equals_brute_force_or_refuses_constant_input(pairs):
    """Any small tied integer data: tau-b equals the pair loop, or a constant-input error."""
    x, y = (np.array(column, dtype=float) for column in zip(*pairs, strict=True))
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        with pytest.raises(ValueError, match="constant"):
            provenance.kendall(x, y)
        return
    result = provenance.kendall(x, y, alternative="two-sided")
    assert result.statistic == pytest.approx(brute_force_kendall(x, y), abs=1e-14)
    assert 0.0 < result.pvalue <= 1.0
