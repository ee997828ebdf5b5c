"""Every bad input raises ValueError/TypeError naming the argument, the value and what is
allowed, before anything is compiled."""

import numpy as np
import pytest

import lazyrich
from lazyrich.core import engine


@pytest.fixture(autouse=True)
def no_compilation(monkeypatch):
    """Fail the test if the engine gets as far as compiling."""
    def refuse(*args, **kwargs):
        raise AssertionError("compiled before validating")
    monkeypatch.setattr(engine, "_compiled_runner", refuse)


@pytest.mark.parametrize("kwargs,error,fragments", [
    ({"experiment": "grokkin"}, ValueError, ["grokkin", "known experiments", "grokking"]),
    ({"experiment": 3}, TypeError, ["experiment=3", "int"]),
    ({"alpha_": 1.0}, ValueError, ["alpha_", "did you mean 'alpha'"]),
    ({"alpha": "big"}, TypeError, ["alpha='big'", "str", "real number > 0"]),
    ({"alpha": [1.0, "x"]}, TypeError, ["alpha='x'"]),
    ({"alpha": 0.0}, ValueError, ["alpha=0.0", "> 0"]),
    ({"alpha": -1.0}, ValueError, ["alpha=-1.0"]),
    ({"alpha": float("nan")}, ValueError, ["alpha=nan", "not finite"]),
    ({"alpha": []}, ValueError, ["alpha=[]", "empty"]),
    ({"alpha": [1.0, 1.0]}, ValueError, ["repeats"]),
    ({"alpha": np.ones((2, 2))}, ValueError, ["alpha", "shape (2, 2)", "1-d"]),
    ({"D": 0}, ValueError, ["D=0", ">= 1"]),
    ({"N": -5}, ValueError, ["N=-5", ">= 1"]),
    ({"P": 2.5}, TypeError, ["P=2.5", "not an integer"]),
    ({"N": True}, TypeError, ["N=True", "bool"]),
    ({"steps": 0}, ValueError, ["steps=0", "> 0"]),
    ({"steps": [10, 20]}, ValueError, ["steps", "cannot be a sweep axis"]),
    ({"steps": 100, "log_every": 30}, ValueError, ["log_every=30", "steps=100", "divide"]),
    ({"log_every": 0}, ValueError, ["log_every=0"]),
    ({"seed": -1}, ValueError, ["seed=-1", ">= 0"]),
    ({"dynamics": "fast"}, ValueError, ["dynamics='fast'", "'network'", "'moments'"]),
    ({"target": "cubic"}, ValueError, ["target='cubic'", "'hermite'"]),
    ({"train_readout": "yes"}, TypeError, ["train_readout='yes'", "True or False"]),
    ({"train_readout": True, "dynamics": "moments"}, ValueError,
     ["train_readout=True", "dynamics='network'"]),
    ({"linearized": True, "dynamics": "infinite"}, ValueError, ["linearized=True"]),
    ({"chunk_size": 0}, ValueError, ["chunk_size=0", "positive integer"]),
    ({"chunk_size": 2.5}, TypeError, ["chunk_size=2.5"]),
    ({"vmap_size": -2}, ValueError, ["vmap_size=-2", "positive integer"]),
    ({"memory_budget_bytes": 0}, ValueError, ["memory_budget_bytes=0"]),
    ({"progress": "no"}, TypeError, ["progress='no'"]),
])
def test_bad_input_is_refused_with_a_clear_message(kwargs, error, fragments):
    kwargs = dict(kwargs)
    experiment = kwargs.pop("experiment", "grokking")
    with pytest.raises(error) as info:
        lazyrich.sweep(experiment, progress=kwargs.pop("progress", False), **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_defaults_refuses_unknown_and_bad_values():
    experiment = lazyrich.get_experiment("grokking")
    with pytest.raises(ValueError, match="not parameters"):
        experiment.defaults(width=3)
    with pytest.raises(ValueError, match="D=0"):
        experiment.defaults(D=0)


@pytest.mark.parametrize("experiment,kwargs,error,fragment", [
    ("teacher", {"activation": "softplus"}, ValueError, "activation='softplus'"),
    ("teacher", {"M": 0}, ValueError, "M=0"),
    ("teacher", {"batch_size": 0.5}, TypeError, "batch_size=0.5"),
    ("linear_rank", {"rank": 0}, ValueError, "rank"),
    ("linear_rank", {"init": "orthogonal"}, ValueError, "init='orthogonal'"),
    ("rnn_rank", {"task": "XOR"}, ValueError, "task='XOR'"),
    ("rnn_rank", {"N": 8, "rank": 9}, ValueError, "rank"),
    ("rnn_rank", {"momentum": float("inf")}, ValueError, "momentum=inf"),
])
def test_every_experiment_refuses_bad_input(experiment, kwargs, error, fragment):
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace("[", r"\[")):
        lazyrich.sweep(experiment, progress=False, **kwargs)


def test_store_paths_that_cannot_work_are_refused_and_nothing_is_written(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot be created|not a directory"):
        lazyrich.sweep("grokking", store=str(blocker / "runs.zarr"), progress=False, steps=10,
                       log_every=5, D=4, N=4, P=4, n_test=4)
    assert blocker.read_text() == "x"
    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot be resumed"):
        lazyrich.sweep("grokking", store=str(corrupt), progress=False, steps=10, log_every=5)
    assert (corrupt / "zarr.json").read_text() == "{not json"
    with pytest.raises(ValueError, match="not a lazyrich sweep store"):
        lazyrich.open(str(corrupt))
    with pytest.raises(ValueError, match="does not exist"):
        lazyrich.load(str(tmp_path / "missing.nc"))


def test_theory_solvers_refuse_bad_input():
    from dmft import committee, kernel

    eye = np.eye(2)
    with pytest.raises(ValueError, match="dt="):
        committee.solve(0.5, eye, eye, eye, t_max=1.0, dt=float("inf"))
    with pytest.raises(ValueError, match="multiple of dt"):
        committee.solve(0.5, eye, eye, eye, t_max=1.05, dt=0.1)
    with pytest.raises(ValueError, match="steps must be"):
        kernel.learning_curves(eye, eye, np.ones(2), np.ones(2), [-1], 0.1)
    with pytest.raises(ValueError, match="log_every"):
        kernel.grokking_lazy_curves(steps=10, log_every=3)


@pytest.mark.parametrize("argv", [
    ["run", "grokking", "--alpha", "-1", "--out", "x.nc"],
    ["run", "grokking", "--steps", "10", "--log_every", "3", "--out", "x.nc"],
    ["run", "teacher", "--activation", "tanh", "--out", "x.nc"],
    ["compare", "teacher", "--out", "x.png"],
])
def test_command_line_exits_non_zero_with_one_line_and_writes_nothing(argv, tmp_path,
                                                                      monkeypatch, capsys):
    from lazyrich.views.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


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
         ["min_length <= max_length", "5, 3"]),
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
