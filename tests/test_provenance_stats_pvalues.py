"""provenance p-values of counted methods and float32 ranks, against scipy and enumeration."""

import itertools

import numpy as np
import pytest
from scipy import stats

import provenance


@pytest.mark.parametrize("statistic", [provenance.spearman, provenance.kendall])
@pytest.mark.parametrize("n_permutations", [19, 999])
def test_permutation_floor_is_exactly_one_over_b_plus_one(statistic, n_permutations):
    """A perfect association is beaten by no reordering: p is 1/(B + 1) to the last bit, so
    `p <= alpha` holds at B = 19, alpha = 0.05 (exp(log p) gave 0.0010000000000000002)."""
    x = np.arange(60.0)
    result = statistic(x, x, method="permutation", n_permutations=n_permutations)
    assert result.pvalue == 1 / (n_permutations + 1)
    assert result.log10_pvalue == np.log10(1 / (n_permutations + 1))
    if n_permutations == 19:
        assert result.pvalue <= 0.05


def spearman_of_reordered(y):
    def statistic(x, axis=-1):
        rx = stats.rankdata(x, axis=axis) - (len(y) + 1) / 2
        ry = stats.rankdata(y) - (len(y) + 1) / 2
        return np.sum(rx * ry, axis=axis) / np.sqrt(np.sum(rx * rx, axis=axis) * np.sum(ry * ry))
    return statistic


def tied_cases(count, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(4, 7))
        yield (rng.integers(0, 3, n).astype(float), rng.integers(0, 4, n).astype(float))


def test_doubled_two_sided_exact_equals_scipy_permutation_test():
    """two_sided="doubled" is scipy.stats.permutation_test's convention (all n! pairings), and
    "absolute" counts |rho'| >= |rho| over the same enumeration; on tied small-n data the two
    differ in some cases, which is why both are offered."""
    differ = 0
    for x, y in tied_cases(30):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        theirs = stats.permutation_test((x,), spearman_of_reordered(y), vectorized=True,
                                        permutation_type="pairings", n_resamples=np.inf,
                                        alternative="two-sided").pvalue
        doubled = provenance.spearman(x, y, method="exact", alternative="two-sided",
                                      two_sided="doubled").pvalue
        assert doubled == pytest.approx(theirs, rel=1e-12)
        rho = stats.spearmanr(x, y).statistic
        null = spearman_of_reordered(y)(x[np.array(list(itertools.permutations(range(len(x)))))])
        absolute = provenance.spearman(x, y, method="exact", alternative="two-sided").pvalue
        assert absolute == pytest.approx(np.mean(np.abs(null) >= abs(rho) - 1e-12), rel=1e-12)
        differ += absolute != pytest.approx(doubled, rel=1e-12)
    assert differ > 0


@pytest.mark.parametrize("statistic", [provenance.spearman, provenance.kendall])
def test_doubled_two_sided_permutation_is_twice_the_smaller_tail(statistic):
    """Same seed, same null: "doubled" = min(1, 2 min(p_greater, p_less)) to the last bit."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 30)), rng.integers(0, 5, (2, 30)).astype(float)
    options = {"method": "permutation", "n_permutations": 200, "seed": 4}
    greater = statistic(x, y, alternative="greater", **options).pvalue
    less = statistic(x, y, alternative="less", **options).pvalue
    doubled = statistic(x, y, alternative="two-sided", two_sided="doubled", **options).pvalue
    np.testing.assert_array_equal(doubled, np.minimum(1.0, 2 * np.minimum(greater, less)))
    with pytest.raises(ValueError, match="two_sided='both' is not allowed"):
        statistic(x, y, two_sided="both")


def test_float32_ranks_equal_scipy_on_the_same_float32_values():
    """float32 input is ranked without a float64 copy; ties are those of the float32 values
    (as scipy ranks them), so rho and p equal scipy's on the same arrays."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 20_000)).astype(np.float32)
    y = (0.05 * x + rng.normal(size=(2, 20_000))).astype(np.float32)
    y[:, :5000] = np.round(y[:, :5000], 1)
    ours = provenance.spearman(x, y)
    for row in range(2):
        theirs = stats.spearmanr(x[row], y[row], alternative="greater")
        assert ours.statistic[row] == pytest.approx(theirs.statistic, rel=1e-12)
        assert ours.pvalue[row] == pytest.approx(theirs.pvalue, rel=1e-8)
    np.testing.assert_array_equal(provenance.rankdata(y), stats.rankdata(y, axis=-1))
    mixed = provenance.spearman(x[0].astype(np.float64), y[0])
    assert mixed.statistic == pytest.approx(ours.statistic[0], rel=1e-12)


def test_padded_permutation_block_draws_uniform_orderings():
    """Lengths are padded to a bucket (one compilation serves many n): the padded block's
    orderings of 4 real values among 8 places are uniform over the 24 orderings (chi-square)
    and never move a padding value into a real place."""
    import jax

    from provenance.stats import _permutation_block, bucket_length

    assert [bucket_length(n) for n in (3, 16, 17, 33, 1000, 1025)] == [3, 16, 18, 36, 1024, 1152]
    xc = np.array([1.0, 10, 100, 1000, 0, 0, 0, 0])
    yc = np.array([1.0, 2, 3, 4, 9, 9, 9, 9])  # a padding value reaching x would show
    keys = jax.random.split(jax.random.key(0), 24_000)
    sums = np.asarray(_permutation_block()(keys, xc, yc, 1.0, 4, 1)).round().astype(int)
    values, counts = np.unique(sums, return_counts=True)
    assert len(values) == 24 and all(sorted(str(v)) == ["1", "2", "3", "4"] for v in values)
    assert stats.chisquare(counts).pvalue > 1e-3
