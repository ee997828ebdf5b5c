"""Bad input to `provenance` (API and `python -m provenance`): named errors, nothing written.

Each API case is (call, error type, fragments of the message): the fragments name the argument
and, where sensible, the value received. Each command-line case must exit with status 2, print
exactly one line on stderr naming the argument, and create no file or folder.
"""

import subprocess
import sys

import numpy as np
import pytest

N_API_CASES = 101
N_CLI_CASES = 24


def _provenance_cases():
    import provenance as pv
    from provenance.demo import DemoConfig

    x, y = np.arange(10.0), np.arange(10.0)[::-1].copy()
    order = np.arange(10)
    index = pv.build_span_index([np.arange(5)] * 3)
    mixed = pv.build_span_index([np.arange(5), np.arange(10, 15), np.arange(10, 15)])
    copies = np.arange(5.0)
    return [
        # rank correlations
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
        (lambda: pv.spearman(x, y, method="permutation", seed=-1), ValueError,
         ["seed=-1", "[0, 2**32 - 1]"]),
        (lambda: pv.spearman(x, y, method="permutation", seed=2**32), ValueError,
         ["seed=4294967296", "[0, 2**32 - 1]"]),
        (lambda: pv.spearman(x, y, seed=1.5), TypeError, ["seed=1.5"]),
        (lambda: pv.spearman(x, y, method="permutation", chunk=0), ValueError, ["chunk=0"]),
        (lambda: pv.spearman(x, y, method="permutation", n_permutations=2.5), TypeError,
         ["n_permutations=2.5"]),
        (lambda: pv.spearman(np.arange(12.0), np.arange(12.0), method="exact"), ValueError,
         ["method='exact'", "n=12"]),
        (lambda: pv.kendall(x, y, method="permutation", seed=-3), ValueError, ["seed=-3"]),
        (lambda: pv.kendall(x, y, method="permutation", n_permutations=0), ValueError,
         ["n_permutations=0"]),
        (lambda: pv.kendall(x, y, method="fast"), ValueError, ["method='fast'"]),
        (lambda: pv.kendall(x, y[:4]), ValueError, ["(10,)", "(4,)"]),
        (lambda: pv.kendall(x, np.r_[np.nan, y[1:]]), ValueError, ["y must be finite"]),
        (lambda: pv.pearson(x, y, alternative="up"), ValueError, ["alternative='up'"]),
        (lambda: pv.pearson(np.ones(10), y), ValueError, ["x is constant"]),
        (lambda: pv.pearson(x, np.r_[y[:9], np.nan]), ValueError, ["y must be finite"]),
        (lambda: pv.rankdata(["a", "b"]), TypeError, ["x must be an array of real numbers"]),
        (lambda: pv.count_inversions(np.array([-1, 2])), ValueError,
         ["values must be non-negative", "smallest -1"]),
        (lambda: pv.count_inversions(np.array([0.5, 1.0])), ValueError,
         ["values must be non-negative integers", "float64"]),
        # the query test
        (lambda: pv.query_test(x, np.arange(5)), ValueError, ["order has 5", "loglik has 10"]),
        (lambda: pv.query_test(x, order, reference=np.ones(3)), ValueError,
         ["reference has 3"]),
        (lambda: pv.query_test(x, order, statistic="tau"), ValueError,
         ["statistic='tau'", "'kendall'"]),
        (lambda: pv.query_test(np.ones((2, 2, 10)), order), ValueError,
         ["loglik must have shape", "(2, 2, 10)"]),
        (lambda: pv.query_test(x, order, n_tokens=-np.ones(10)), ValueError,
         ["n_tokens", "-1.0"]),
        (lambda: pv.query_test(x, order, n_tokens=np.zeros(10)), ValueError,
         ["n_tokens", "0.0"]),
        (lambda: pv.query_test(x, order, statistic="pearson", method="exact"), ValueError,
         ["method='exact'", "statistic='pearson'"]),
        (lambda: pv.query_test(np.stack([x, y]), order, models=["a", "b", "c"]), ValueError,
         ["models has 3 names", "(2, 10)"]),
        (lambda: pv.query_test(np.r_[x[:9], np.nan], order), ValueError,
         ["loglik has 1 non-finite", "[9]"]),
        (lambda: pv.query_test(x, np.zeros(10)), ValueError, ["order is constant"]),
        (lambda: pv.query_test(np.array(["a"] * 10), order), TypeError,
         ["loglik must be a numeric array", "<U1"]),
        (lambda: pv.query_test(np.ones((3, 10)) * x, np.ones((2, 10)) * order), ValueError,
         ["order has shape (2, 10)", "(3, 10)"]),
        (lambda: pv.query_test(x, order, method="permutation", seed=-1), ValueError,
         ["seed=-1"]),
        (lambda: pv.query_test(np.ones(10), order), ValueError, ["loglik is constant"]),
        (lambda: pv.query_test(x, order, alternative="more"), ValueError,
         ["alternative='more'"]),
        # combining p-values
        (lambda: pv.fisher_combination([0.5, 1.5]), ValueError, ["(0, 1]", "1.5"]),
        (lambda: pv.holm([0.5, np.nan]), ValueError, ["[0, 1]", "nan"]),
        (lambda: pv.combine_pvalues([0.5], method="tippett"), ValueError, ["method='tippett'"]),
        (lambda: pv.stouffer_combination([0.0, 0.5]), ValueError, ["(0, 1)", "0.0"]),
        (lambda: pv.fisher_combination([]), ValueError, ["pvalues is empty"]),
        (lambda: pv.holm(["a"]), TypeError, ["pvalues must be numbers", "'a'"]),
        (lambda: pv.combine_pvalues([0.5], method=3), ValueError, ["method=3"]),
        # synthetic data and power curves
        (lambda: pv.palimpsest(0, 1.0), ValueError, ["n=0", ">= 3"]),
        (lambda: pv.palimpsest(10, np.nan), ValueError, ["strength=nan"]),
        (lambda: pv.palimpsest(10, 1.0, reference_correlation=2.0), ValueError,
         ["reference_correlation=2.0", "[-1, 1]"]),
        (lambda: pv.palimpsest(10, 1.0, batch_size=0), ValueError, ["batch_size=0"]),
        (lambda: pv.palimpsest(10, 1.0, batch_size=1.5), TypeError, ["batch_size=1.5"]),
        (lambda: pv.palimpsest(10, 1.0, batch_size=6), ValueError,
         ["batch_size=6", "n // 2"]),
        (lambda: pv.palimpsest(10, 1.0, decay=0), ValueError, ["decay=0", "positive"]),
        (lambda: pv.palimpsest(10, 1.0, noise="big"), TypeError, ["noise='big'"]),
        (lambda: pv.palimpsest(10, 1.0, noise=np.inf), ValueError, ["noise=inf"]),
        (lambda: pv.palimpsest(10, 1.0, seed=-1), ValueError, ["seed=-1"]),
        (lambda: pv.palimpsest(10, 1.0, seed="a"), TypeError, ["seed='a'"]),
        (lambda: pv.palimpsest(10, 1.0, n_draws=0), ValueError, ["n_draws=0"]),
        (lambda: pv.palimpsest(10, [[1.0, 2.0]]), ValueError, ["strength=[[1.0, 2.0]]"]),
        (lambda: pv.palimpsest(10.5, 1.0), TypeError, ["n=10.5"]),
        (lambda: pv.palimpsest(10, "strong"), TypeError, ["strength='strong'"]),
        (lambda: pv.power_curve([0.1], [0]), ValueError, ["sizes=[0]", ">= 3"]),
        (lambda: pv.power_curve([0.1], [10.5]), ValueError, ["sizes=[10.5]"]),
        (lambda: pv.power_curve([0.1], [10], alpha=1.5), ValueError, ["alpha=1.5", "(0, 1)"]),
        (lambda: pv.power_curve([0.1], [10], statistic="tau"), ValueError,
         ["statistic='tau'"]),
        (lambda: pv.power_curve([0.1], [10], method="boot"), ValueError, ["method='boot'"]),
        (lambda: pv.power_curve([0.1], [10], n_draws=0), ValueError, ["n_draws=0"]),
        (lambda: pv.power_curve([np.nan], [10]), ValueError, ["strengths", "NaN"]),
        # the span index and the span-overlap test
        (lambda: pv.build_span_index([np.arange(5)], min_length=5, max_length=3), ValueError,
         ["max_length=3", "min_length=5"]),
        (lambda: pv.build_span_index([np.linspace(0, 1, 5)]), TypeError,
         ["integer token ids", "float64"]),
        (lambda: pv.build_span_index([np.arange(5)], min_length=0), ValueError,
         ["min_length=0"]),
        (lambda: pv.build_span_index([np.arange(5)], max_length=2.5), TypeError,
         ["max_length=2.5"]),
        (lambda: pv.build_span_index([np.arange(5)], modulus=1), ValueError, ["modulus=1"]),
        (lambda: pv.build_span_index([np.arange(5)], seed=-1), ValueError, ["seed=-1"]),
        (lambda: pv.build_span_index([]), ValueError, ["examples must be a non-empty list"]),
        (lambda: pv.build_span_index([np.arange(-1, 4)]), ValueError,
         ["examples must hold", "smallest -1"]),
        (lambda: pv.build_span_index(np.arange(6), offsets=np.array([0, 7])), ValueError,
         ["examples offsets", "(6,)"]),
        (lambda: pv.longest_matches(index, np.linspace(0, 1, 5)), TypeError,
         ["text must hold integer token ids", "float64"]),
        (lambda: pv.span_overlap_scores(index, np.arange(5), weight="heavy"), ValueError,
         ["weight='heavy'", "'length'"]),
        (lambda: pv.span_overlap_scores(index, np.arange(5), count="all"), ValueError,
         ["count='all'", "'examples'"]),
        (lambda: pv.span_overlap_scores(index, np.arange(5), weight=np.ones(3)), ValueError,
         ["weight array", "(5,)", "(3,)"]),
        (lambda: pv.span_overlap_test(index, np.arange(5), np.arange(2)), ValueError,
         ["order", "(3,)", "(2,)"]),
        (lambda: pv.span_overlap_test(index, np.arange(5), np.arange(3)), ValueError,
         ["same span-overlap score"]),
        (lambda: pv.span_overlap_test(mixed, np.arange(10, 15), np.array([0, 0, 1]),
                                      by_step=True), ValueError, ["by_step=True"]),
        # reshuffled retraining
        (lambda: pv.reshuffled_rank_test(1.0, np.array([])), ValueError, ["K >= 1"]),
        (lambda: pv.reshuffled_z_test(1.0, np.array([1.0])), ValueError, ["K >= 2"]),
        (lambda: pv.reshuffled_z_test(1.0, copies, distribution="cauchy"), ValueError,
         ["distribution='cauchy'", "'normal'"]),
        (lambda: pv.reshuffled_rank_test(np.nan, copies), ValueError, ["finite"]),
        (lambda: pv.reshuffled_rank_test(1.0, copies, alternative="up"), ValueError,
         ["alternative='up'"]),
        (lambda: pv.reshuffled_z_test(1.0, np.ones(4)), ValueError, ["identical"]),
        (lambda: pv.reshuffled_z_test(np.ones(3), np.ones((4, 2))), ValueError,
         ["copies_loglik must have shape", "(4, 2)", "(3,)"]),
        # the demo's configuration
        (lambda: DemoConfig(n_documents=0), ValueError, ["n_documents=0"]),
        (lambda: DemoConfig(batch_size=0), ValueError, ["batch_size=0"]),
        (lambda: DemoConfig(n_copies=1), ValueError, ["n_copies=1", ">= 2"]),
        (lambda: DemoConfig(seed=-1), ValueError, ["seed=-1"]),
        (lambda: DemoConfig(retrain_fraction=1.5), ValueError, ["retrain_fraction=1.5"]),
        (lambda: DemoConfig(finetune_steps=(0, 8)), ValueError, ["finetune_steps=0"]),
    ]


@pytest.mark.parametrize("case", range(N_API_CASES))
def test_provenance_refuses_bad_input_naming_the_argument(case):
    """The call raises the stated error type, and its message names the argument."""
    call, error, fragments = _provenance_cases()[case]
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_provenance_case_list_is_complete():
    """The parametrised ranges cover every case in the catalogues."""
    assert len(_provenance_cases()) == N_API_CASES
    assert len(CLI_CASES) == N_CLI_CASES


QUERY = ["query", "--loglik", "bob.npy", "--order", "order.npy"]
CLI_CASES = [
    (["query", "--loglik", "missing.npy", "--order", "also_missing.npy"], "missing.npy"),
    (QUERY + ["--method", "bootstrap"], "--method"),
    (QUERY + ["--json", "no_dir/out.json"], "--json"),
    (QUERY + ["--json", "folder.json"], "folder.json"),
    (QUERY + ["--statistic", "tau"], "--statistic"),
    (QUERY + ["--method", "permutation", "--seed", "-1"], "seed=-1"),
    (QUERY + ["--method", "permutation", "--permutations", "0"], "n_permutations=0"),
    (["query", "--loglik", "bob.txt", "--order", "order.npy"], "--loglik"),
    (["query", "--loglik", "bob.npy", "--order", "order5.npy"], "order has 5"),
    (QUERY + ["--reference", "nan.npy"], "--reference: 'nan.npy' field 'array' has 1 non-finite"),
    (["power", "--out", "no_such_dir/power.png"], "--out"),
    (["power", "--out", "folder.png"], "folder.png"),
    (["power", "--out", "power.jpg"], "--out"),
    (["power", "--out", "power.png", "--draws", "0"], "n_draws=0"),
    (["power", "--out", "power.png", "--alpha", "2"], "alpha=2.0"),
    (["power", "--out", "power.png", "--sizes", "2"], "sizes=[2]"),
    (["power", "--out", "power.png", "--seed", "-1"], "seed=-1"),
    (["demo", "--out-dir", "bob.npy"], "--out-dir"),
    (["demo", "--out-dir", "no_dir/demo"], "--out-dir"),
    (["demo", "--out-dir", "taken"], "summary.json"),
    (["demo", "--out-dir", "demo", "--documents", "0"], "n_documents=0"),
    (["demo", "--out-dir", "demo", "--copies", "1"], "n_copies=1"),
    (["demo", "--out-dir", "demo", "--seed", "-1"], "seed=-1"),
    (["demo", "--out-dir", "demo", "--size", "huge"], "--size"),
]


def _tree(folder):
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize("case", range(N_CLI_CASES))
def test_provenance_command_line_exits_non_zero_and_writes_nothing(case, tmp_path, monkeypatch,
                                                                   capsys):
    """Exit status 2, one stderr line naming the argument, and no file or folder created
    (`provenance.__main__.main` in this process: argparse's own errors exit via SystemExit)."""
    from provenance.__main__ import main

    argv, fragment = CLI_CASES[case]
    np.save(tmp_path / "bob.npy", np.arange(10.0))
    np.save(tmp_path / "order.npy", np.arange(10))
    np.save(tmp_path / "order5.npy", np.arange(5))
    np.save(tmp_path / "nan.npy", np.r_[np.arange(9.0), np.nan])
    (tmp_path / "bob.txt").write_text("1\n2\n3\n")
    for folder in ("folder.json", "folder.png", "taken/summary.json"):
        (tmp_path / folder).mkdir(parents=True)
    before = _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert fragment in stderr, (fragment, stderr)
    assert _tree(tmp_path) == before


def test_python_m_provenance_reports_bad_input_in_one_line(tmp_path):
    """The same contract through the interpreter (`python -m provenance`): status 2, one line."""
    completed = subprocess.run([sys.executable, "-m", "provenance", "power", "--out",
                                "no_such_dir/power.png"], cwd=tmp_path, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 2, completed
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert not any(tmp_path.iterdir())
