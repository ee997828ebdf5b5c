"""provenance.query_test: the paper's query-setting test against direct scipy computations."""

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import provenance
from provenance.query import query_test


@pytest.fixture
def batches():
    """400 examples in 40 batches of 10 (ties in order), 3 models, one reference model."""
    rng = np.random.default_rng(0)
    order = np.repeat(rng.permutation(40), 10).astype(float)
    difficulty = rng.normal(size=400)
    reference = difficulty + 0.1 * rng.normal(size=400)
    trend = np.array([[0.0], [0.02], [0.05]])
    loglik = difficulty + trend * order + 0.3 * rng.normal(size=(3, 400))
    return loglik, order, reference


@pytest.mark.parametrize("statistic,reference_test", [
    ("spearman", stats.spearmanr), ("kendall", stats.kendalltau), ("pearson", stats.pearsonr)])
def test_equals_scipy_on_reference_normalised_scores(batches, statistic, reference_test):
    """Statistic to 1e-12 and p to 1e-8 relative, each model against scipy on loglik - ref."""
    loglik, order, reference = batches
    result = query_test(loglik, order, reference, statistic=statistic)
    assert result.reference_normalised and result.n == 400
    for model in range(3):
        expected = reference_test(order, loglik[model] - reference, alternative="greater")
        assert result.statistic[model] == pytest.approx(expected.statistic, abs=1e-12)
        assert result.pvalue[model] == pytest.approx(expected.pvalue, rel=1e-8, abs=1e-300)


def test_reference_normalisation_sharpens_the_evidence(batches):
    loglik, order, reference = batches
    raw = query_test(loglik, order)
    normalised = query_test(loglik, order, reference)
    assert normalised.log10_pvalue[1] < raw.log10_pvalue[1] - 3
    assert normalised.log10_pvalue[2] < -30 and normalised.pvalue[0] > 1e-3


def test_per_token_normalisation_divides_the_score(batches):
    loglik, order, _ = batches
    tokens = np.arange(1.0, 401.0)
    result = query_test(loglik[2], order, n_tokens=tokens, statistic="kendall")
    assert result.statistic == pytest.approx(stats.kendalltau(order, loglik[2] / tokens)
                                             .statistic, abs=1e-12)


def test_dataset_str_and_json(batches):
    loglik, order, reference = batches
    result = query_test(loglik, order, reference, models=["base", "tune-a", "tune-b"])
    ds = result.to_dataset()
    assert isinstance(ds, xr.Dataset) and list(ds.model.values) == ["base", "tune-a", "tune-b"]
    np.testing.assert_allclose(ds.pvalue_holm, provenance.holm(result.pvalue))
    assert ds.attrs["statistic_name"] == "spearman" and ds.attrs["n"] == 400
    text = str(result)
    assert "tune-b" in text and "log10 p" in text and "- reference" in text
    assert json.loads(json.dumps(result.to_dict()))["models"][1] == "tune-a"
    single = query_test(loglik[2], order)
    assert "spearman =" in str(single) and single.to_dataset().statistic.ndim == 0


def test_permutation_and_exact_methods_pass_through(batches):
    loglik, order, reference = batches
    permuted = query_test(loglik[:, :60], order[:60], reference[:60], method="permutation",
                          n_permutations=500)
    asymptotic = query_test(loglik[:, :60], order[:60], reference[:60])
    np.testing.assert_allclose(permuted.pvalue, asymptotic.pvalue, atol=0.05)
    exact = query_test(loglik[2, :30], np.arange(30.0), statistic="kendall", method="exact")
    assert exact.method == "exact"


@pytest.mark.parametrize("arguments,error,fragment", [
    ((np.ones((2, 3, 4)), np.arange(4.0)), ValueError, "loglik must have shape"),
    ((np.arange(5.0), np.arange(4.0)), ValueError, "order has 4 examples"),
    (([1.0, np.nan, 2.0, 3.0], np.arange(4.0)), ValueError, "loglik has 1 non-finite"),
    ((np.arange(4.0), [0, 1, np.inf, 2]), ValueError, "order has 1 non-finite"),
    ((np.arange(2.0), np.arange(2.0)), ValueError, "at least 3"),
    ((np.arange(4.0), np.ones(4)), ValueError, "order is constant"),
    ((np.ones(4), np.arange(4.0)), ValueError, "loglik is constant"),
    ((np.array(["a", "b", "c"]), np.arange(3.0)), TypeError, "loglik must be a numeric"),
    ((np.arange(4.0), np.arange(4.0), np.arange(5.0)), ValueError, "reference has 5"),
])
def test_bad_input_names_the_argument(arguments, error, fragment):
    with pytest.raises(error, match=fragment):
        query_test(*arguments)


def test_bad_options():
    x = np.arange(5.0)
    with pytest.raises(ValueError, match="statistic='tau'"):
        query_test(x, x, statistic="tau")
    with pytest.raises(ValueError, match="not available for statistic='pearson'"):
        query_test(x, x, statistic="pearson", method="exact")
    with pytest.raises(ValueError, match="models has 3 names"):
        query_test(np.vstack([x, x[::-1]]), x, models=["a", "b", "c"])
    with pytest.raises(ValueError, match="alternative='up'"):
        query_test(x, x, alternative="up")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=3, max_size=30),
       st.integers(0, 2**31 - 1))
def test_fuzzed_inputs_give_valid_p_values_or_clear_errors(values, seed):
    """Any small integer data (many ties): a p-value in (0, 1] equal to scipy's, or a ValueError."""
    loglik = np.array(values, dtype=float)
    order = np.random.default_rng(seed).integers(0, 4, size=len(values)).astype(float)
    try:
        result = query_test(loglik, order)
    except ValueError as error:
        assert "constant" in str(error)
        return
    assert 0.0 < result.pvalue <= 1.0
    assert result.statistic == pytest.approx(stats.spearmanr(order, loglik).statistic, abs=1e-12)
