"""Bad input to `provenance` (API and `python -m provenance`): named errors, nothing written."""

import numpy as np
import pytest


def _provenance_cases():
    import provenance as pv

    x, y = np.arange(10.0), np.arange(10.0)[::-1].copy()
    index = pv.build_span_index([np.arange(5)] * 3)
    return [
        (lambda: pv.spearman(np.r_[np.nan, x[1:]], y), ValueError, ["x must be finite"]),
        (lambda: pv.spearman(x, np.r_[np.inf, y[1:]]), ValueError, ["y must be finite"]),
        (lambda: pv.spearman(x, y[:5]), ValueError, ["(10,)", "(5,)"]),
        (lambda: pv.spearman(x, y, method="bootstrap"), ValueError,
         ["method='bootstrap'", "'permutation'"]),
        (lambda: pv.kendall(x, y, alternative="bigger"), ValueError,
         ["alternative='bigger'", "'two-sided'"]),
        (lambda: pv.spearman(x[:2], y[:2]), ValueError, ["at least 3", "got 2"]),
        (lambda: pv.spearman([], []), ValueError, ["at least 3", "got 0"]),
        (lambda: pv.spearman(x, y, method="permutation", n_permutations=0), ValueError,
         ["n_permutations=0"]),
        (lambda: pv.spearman(np.ones(10), y), ValueError, ["x is constant"]),
        (lambda: pv.spearman(["a"] * 10, y), TypeError, ["x must be an array of real numbers"]),
        (lambda: pv.kendall(np.arange(500.0), np.arange(500.0), method="exact"), ValueError,
         ["method='exact'", "n <= 100", "n=500"]),
        (lambda: pv.query_test(x, np.arange(5)), ValueError, ["order has 5", "loglik has 10"]),
        (lambda: pv.query_test(x, np.arange(10), reference=np.ones(3)), ValueError,
         ["reference has 3"]),
        (lambda: pv.query_test(x, np.arange(10), statistic="tau"), ValueError,
         ["statistic='tau'", "'kendall'"]),
        (lambda: pv.query_test(np.ones((2, 2, 10)), np.arange(10)), ValueError,
         ["loglik must have shape", "(2, 2, 10)"]),
        (lambda: pv.query_test(x, np.arange(10), n_tokens=-np.ones(10)), ValueError,
         ["n_tokens", "-1.0"]),
        (lambda: pv.fisher_combination([0.5, 1.5]), ValueError, ["(0, 1]", "1.5"]),
        (lambda: pv.holm([0.5, np.nan]), ValueError, ["[0, 1]", "nan"]),
        (lambda: pv.combine_pvalues([0.5], method="tippett"), ValueError, ["method='tippett'"]),
        (lambda: pv.palimpsest(0, 1.0), ValueError, ["n=0", ">= 3"]),
        (lambda: pv.palimpsest(10, np.nan), ValueError, ["strength=nan"]),
        (lambda: pv.palimpsest(10, 1.0, reference_correlation=2.0), ValueError,
         ["reference_correlation=2.0", "[-1, 1]"]),
        (lambda: pv.power_curve([0.1], [0]), ValueError, ["sizes=[0]", ">= 3"]),
        (lambda: pv.build_span_index([np.arange(5)], min_length=5, max_length=3), ValueError,
         ["max_length=3", "min_length=5"]),
        (lambda: pv.build_span_index([np.linspace(0, 1, 5)]), TypeError,
         ["integer token ids", "float64"]),
        (lambda: pv.span_overlap_test(index, np.arange(5), np.arange(2)), ValueError,
         ["order", "(3,)", "(2,)"]),
        (lambda: pv.reshuffled_rank_test(1.0, np.array([])), ValueError, ["K >= 1"]),
        (lambda: pv.reshuffled_z_test(1.0, np.array([1.0])), ValueError, ["K >= 2"]),
        (lambda: pv.reshuffled_z_test(1.0, np.arange(5.0), distribution="cauchy"), ValueError,
         ["distribution='cauchy'", "'normal'"]),
        (lambda: pv.reshuffled_rank_test(np.nan, np.arange(5.0)), ValueError, ["finite"]),
    ]


@pytest.mark.parametrize("case", range(30))
def test_provenance_refuses_bad_input_naming_the_argument(case):
    call, error, fragments = _provenance_cases()[case]
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_provenance_case_list_is_complete():
    assert len(_provenance_cases()) == 30


@pytest.mark.parametrize("argv", [
    ["query", "--loglik", "missing.npy", "--order", "also_missing.npy"],
    ["query", "--loglik", "bob.npy", "--order", "order.npy", "--method", "bootstrap"],
    ["query", "--loglik", "bob.npy", "--order", "order.npy", "--json", "no_dir/out.json"],
    ["power", "--out", "no_such_dir/power.png"],
])
def test_provenance_command_line_exits_non_zero_and_writes_nothing(argv, tmp_path, monkeypatch):
    import subprocess
    import sys

    np.save(tmp_path / "bob.npy", np.arange(10.0))
    np.save(tmp_path / "order.npy", np.arange(10))
    before = sorted(path.name for path in tmp_path.iterdir())
    completed = subprocess.run([sys.executable, "-m", "provenance", *argv], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2, completed
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == before
