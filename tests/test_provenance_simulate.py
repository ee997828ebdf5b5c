"""provenance.simulate: synthetic palimpsest data gives calibrated nulls and planted power."""

import numpy as np
import pytest
from scipy import stats

import provenance
from provenance.simulate import palimpsest, power_curve


def test_shapes_ties_and_the_planted_profile():
    data = palimpsest(1000, [0.0, 2.0], n_draws=3, batch_size=10, noise=0.0, difficulty=0.0,
                      seed=1)
    assert data.loglik.shape == (3, 2, 1000) and data.order.shape == (3, 1000)
    np.testing.assert_array_equal(np.sort(data.order[0]), np.repeat(np.arange(100.0), 10))
    expected = 2.0 * np.exp(-(1.0 - data.order / 99.0) / 0.25)  # closed-form profile
    np.testing.assert_allclose(data.loglik[:, 1], expected, rtol=1e-12)
    np.testing.assert_array_equal(data.loglik[:, 0], 0.0)
    linear = palimpsest(50, 1.0, decay=None, noise=0.0, difficulty=0.0, seed=2)
    np.testing.assert_allclose(linear.loglik, linear.order / 49.0, rtol=1e-12)


def test_seed_reproducible_and_reference_correlation():
    a, b = palimpsest(20_000, 0.0, reference_correlation=0.8, seed=3), palimpsest(
        20_000, 0.0, reference_correlation=0.8, seed=3)
    np.testing.assert_array_equal(a.loglik, b.loglik)
    # loglik = d + e and reference = 0.8 d + 0.6 f: correlation 0.8 / sqrt(2)
    assert np.corrcoef(a.loglik, a.reference)[0, 1] == pytest.approx(0.8 / np.sqrt(2), abs=0.02)


@pytest.mark.parametrize("statistic,method", [
    ("spearman", "asymptotic"), ("kendall", "asymptotic"), ("pearson", "asymptotic"),
    ("spearman", "permutation")])
def test_null_p_values_are_uniform(statistic, method):
    """Strength 0, batch ties: 10,000 (2,000 for permutation) p-values pass a KS test at 1%."""
    draws = 2_000 if method == "permutation" else 10_000
    data = palimpsest(40, 0.0, n_draws=draws, batch_size=4, seed=4)
    test = {"spearman": provenance.spearman, "kendall": provenance.kendall,
            "pearson": provenance.pearson}[statistic]
    if method == "permutation":
        # the permutations are shared by all models of one call: a fresh seed per 20 draws
        # keeps the p-values (nearly) independent, as KS needs
        p = np.concatenate([test(data.order[i:i + 20], data.loglik[i:i + 20],
                                 method=method, n_permutations=199, chunk=50, seed=i).pvalue
                            for i in range(0, draws, 20)])
        p = p - np.random.default_rng(5).uniform(0, 1 / 200, size=p.shape)  # undo discreteness
    else:
        p = test(data.order, data.loglik).pvalue
    assert stats.kstest(p, "uniform").pvalue > 0.01
    below = np.sum(p < 0.05)
    assert stats.binomtest(int(below), draws, 0.05).pvalue > 0.01


def test_power_grows_with_strength_and_n_and_reference_helps():
    curve = power_curve([0.0, 0.3, 1.0], [100, 1000], n_draws=200, reference_correlation=0.95,
                        difficulty=2.0, seed=6)
    power, median = curve.power, curve.median_log10_pvalue
    assert power.sel(strength=0.0).max() < 0.1
    assert float(power.sel(n=1000, strength=1.0)) > float(power.sel(n=100, strength=1.0))
    assert np.all(np.diff(median.values, axis=1) < 0)  # p falls with strength
    assert np.all(median.sel(n=1000, strength=[0.3, 1.0]) < median.sel(n=100, strength=[0.3, 1.0]))
    normalised = power_curve([0.3], [1000], n_draws=200, use_reference=True,
                             reference_correlation=0.95, difficulty=2.0, seed=6)
    assert float(normalised.power.sel(n=1000, strength=0.3)) > 2 * float(
        power.sel(n=1000, strength=0.3))


def test_planted_trend_at_paper_scale_is_detected():
    """loglik = c * position / n + noise: p < 1e-8 at c = 0.5, n = 20,000; not at c = 0."""
    data = palimpsest(20_000, [0.0, 0.5], decay=None, batch_size=20, seed=7)
    result = provenance.query_test(data.loglik, data.order)
    assert result.pvalue[1] < 1e-8 and result.pvalue[0] > 1e-3


@pytest.mark.parametrize("options,fragment", [
    ({"n": 2, "strength": 1.0}, "n=2"),
    ({"n": 10, "strength": 1.0, "batch_size": 6}, "batch_size=6"),
    ({"n": 10, "strength": np.nan}, "strength"),
    ({"n": 10, "strength": 1.0, "reference_correlation": 1.5}, "reference_correlation=1.5"),
    ({"n": 10, "strength": 1.0, "decay": 0.0}, "decay=0.0"),
])
def test_bad_options(options, fragment):
    with pytest.raises(ValueError, match=fragment):
        palimpsest(**options)
    with pytest.raises(TypeError, match="seed"):
        palimpsest(10, 1.0, seed="abc")
    with pytest.raises(ValueError, match="alpha"):
        power_curve([0.0], [10], alpha=2.0)


def test_kendall_exact_and_permutation_null_levels():
    """Discrete p-values: P(p <= alpha) <= alpha within binomial slack (exact, n = 12 untied),
    and jittered permutation p-values pass a KS test (1,000 draws, B = 99, batch ties)."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3000, 12))
    exact = provenance.kendall(np.arange(12.0), x, method="exact").pvalue
    for alpha in (0.01, 0.05, 0.2):
        assert stats.binomtest(int(np.sum(exact <= alpha)), 3000, alpha,
                               alternative="greater").pvalue > 0.01
    data = palimpsest(40, 0.0, n_draws=1000, batch_size=4, seed=9)
    permuted = np.concatenate([  # fresh permutations per 50 draws (they are shared in a call)
        provenance.kendall(data.order[i:i + 50], data.loglik[i:i + 50], method="permutation",
                           n_permutations=99, chunk=33, seed=i).pvalue
        for i in range(0, 1000, 50)])
    assert np.all(permuted >= 1 / 100)
    jittered = permuted - rng.uniform(0, 1 / 100, size=permuted.shape)
    assert stats.kstest(jittered, "uniform").pvalue > 0.01
