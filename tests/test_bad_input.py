"""Every bad input raises ValueError/TypeError naming the argument, the value and what is
allowed, before anything is compiled."""

import os

import numpy as np
import pytest

import lazyrich
from lazyrich.core import chunks


@pytest.fixture(autouse=True)
def no_compilation(monkeypatch):
    """Fail the test if the engine gets as far as compiling."""
    def refuse(*args, **kwargs):
        raise AssertionError("compiled before validating")
    monkeypatch.setattr(chunks, "compiled_runner", refuse)


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
    ({"chunk_size": 0}, ValueError, ["chunk_size=0", "integer >= 1"]),
    ({"chunk_size": 2.5}, TypeError, ["chunk_size=2.5"]),
    ({"vmap_size": -2}, ValueError, ["vmap_size=-2", "integer >= 1"]),
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
    if os.path.isdir("/proc"):      # a folder nobody may write in: refused, not waited for
        with pytest.raises(ValueError, match=r"store='/proc/runs.zarr': cannot create its lock"):
            lazyrich.sweep("grokking", store="/proc/runs.zarr", progress=False, steps=10,
                           log_every=5, D=4, N=4, P=4, n_test=4)
    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a lazyrich sweep store; choose another path"):
        lazyrich.sweep("grokking", store=str(corrupt), progress=False, steps=10, log_every=5)
    assert (corrupt / "zarr.json").read_text() == "{not json"
    with pytest.raises(ValueError, match="not a lazyrich sweep store"):
        lazyrich.open(str(corrupt))
    with pytest.raises(ValueError, match="does not exist"):
        lazyrich.load(str(tmp_path / "missing.nc"))


def _sweep(experiment="grokking", **kwargs):
    return lambda: lazyrich.sweep(experiment, progress=False, **kwargs)


def _catalogue():
    """(id, call, error type, fragments its message must contain): the simulator's public API.

    Every call runs in an empty working directory, which must stay empty."""
    import xarray as xr

    from lazyrich.core import init
    from lazyrich.core.checks import check_finite
    from lazyrich.measures import metrics

    small = {"D": 4, "N": 4, "P": 4, "n_test": 4, "steps": 10, "log_every": 5}
    eye = np.eye(3)
    return [
        # sweep engine options
        ("overwrite-type", _sweep(overwrite="yes", **small), TypeError, ["overwrite='yes'"]),
        ("store-type", _sweep(store=3, **small), TypeError, ["store=3", "directory path"]),
        ("store-missing-parent", _sweep(store="no/such/dir/runs.zarr", **small), ValueError,
         ["store='no/such/dir/runs.zarr'", "not an existing directory"]),
        ("executor-type", _sweep(executor=1, **small), TypeError, ["executor=1"]),
        ("ntk-steps-not-supported", _sweep(ntk_steps=[0], **small), ValueError, ["ntk_steps"]),
        ("vmap-size-bool", _sweep(vmap_size=True, **small), TypeError, ["vmap_size=True"]),
        ("memory-budget-float", _sweep(memory_budget_bytes=1.5e9, **small), TypeError,
         ["memory_budget_bytes=1500000000.0"]),
        # grokking parameters
        ("eps-nan", _sweep(eps=float("nan")), ValueError, ["eps=nan", "not finite"]),
        ("eps-string", _sweep(eps="small"), TypeError, ["eps='small'"]),
        ("lr-scale-zero", _sweep(lr_scale=0.0), ValueError, ["lr_scale=0.0"]),
        ("lr-scale-inf", _sweep(lr_scale=float("inf")), ValueError, ["lr_scale=inf"]),
        ("init-scale-string", _sweep(init_scale="1"), TypeError, ["init_scale='1'"]),
        ("degree-zero", _sweep(degree=0), ValueError, ["degree=0"]),
        ("n-test-zero", _sweep(n_test=0), ValueError, ["n_test=0"]),
        ("alpha-complex", _sweep(alpha=1j), TypeError, ["alpha=1j"]),
        ("alpha-none", _sweep(alpha=None), TypeError, ["alpha=None"]),
        ("alpha-bool-axis", _sweep(alpha=[True, False]), TypeError, ["alpha=True"]),
        ("alpha-inf-in-axis", _sweep(alpha=[1.0, float("inf")]), ValueError, ["alpha=inf"]),
        ("seed-too-large", _sweep(seed=2**32), ValueError, ["seed=4294967296", "4294967295"]),
        ("seed-fraction", _sweep(seed=1.7), TypeError, ["seed=1.7"]),
        ("seed-repeated", _sweep(seed=[0, 0]), ValueError, ["repeats"]),
        ("seed-2d", _sweep(seed=np.zeros((2, 2), int)), ValueError, ["seed", "1-d"]),
        ("log-every-axis", _sweep(log_every=[10, 20]), ValueError, ["log_every",
                                                                    "cannot be a sweep axis"]),
        ("steps-float", _sweep(steps=10.5), TypeError, ["steps=10.5"]),
        ("dynamics-typo", _sweep(dynamics="moment"), ValueError, ["dynamics='moment'"]),
        ("linearized-moments", _sweep(linearized=True, dynamics="moments"), ValueError,
         ["linearized=True"]),
        ("parameter-typo", _sweep(lr=0.1), ValueError, ["'lr'", "has no parameter"]),
        # other experiments
        ("teacher-K-zero", _sweep("teacher", K=0), ValueError, ["K=0"]),
        ("teacher-lr-negative", _sweep("teacher", lr=-1.0), ValueError, ["lr=-1.0"]),
        ("teacher-full-batch-string", _sweep("teacher", full_batch="no"), TypeError,
         ["full_batch='no'"]),
        ("linear-rank-too-large", _sweep("linear_rank", d=4, h=4, rank=9), ValueError,
         ["rank"]),
        ("linear-task-seed", _sweep("linear_rank", task_seed=-2), ValueError,
         ["task_seed=-2"]),
        ("linear-kappa-zero", _sweep("linear_rank", kappa=0.0), ValueError, ["kappa=0.0"]),
        ("rnn-leak-above-one", _sweep("rnn_rank", leak=1.5), ValueError, ["leak"]),
        ("rnn-batch-zero", _sweep("rnn_rank", batch_size=0), ValueError, ["batch_size=0"]),
        ("rnn-gain-nan", _sweep("rnn_rank", gain=float("nan")), ValueError, ["gain=nan"]),
        ("digits-loss", _sweep("digits", loss="hinge"), ValueError, ["loss='hinge'"]),
        ("digits-width-zero", _sweep("digits", width=0), ValueError, ["width=0"]),
        ("digits-optimizer", _sweep("digits", optimizer="lion"), ValueError,
         ["optimizer='lion'"]),
        ("digits-n-train-huge", _sweep("digits", n_train=10**6), ValueError, ["n_train"]),
        ("modular-p-one", _sweep("modular", p=1), ValueError, ["p=1"]),
        ("modular-fraction", _sweep("modular", train_fraction=1.5), ValueError,
         ["train_fraction"]),
        ("modular-model", _sweep("modular", model="rnn"), ValueError, ["model='rnn'"]),
        # lookups
        ("get-experiment-typo", lambda: lazyrich.get_experiment("grok"), ValueError,
         ["grok", "grokking"]),
        # files
        ("load-missing", lambda: lazyrich.load("missing.nc"), ValueError,
         ["path='missing.nc'", "does not exist"]),
        ("load-type", lambda: lazyrich.load(3), TypeError, ["path=3"]),
        ("load-directory", lambda: lazyrich.load("."), ValueError, ["is a directory",
                                                                    "lazyrich.open"]),
        ("open-missing", lambda: lazyrich.open("runs.zarr"), ValueError,
         ["path='runs.zarr'", "not a directory"]),
        ("open-type", lambda: lazyrich.open(None), TypeError, ["path=None"]),
        ("save-not-dataset", lambda: lazyrich.save({"a": 1}, "x.nc"), TypeError,
         ["ds has type dict"]),
        ("save-no-folder", lambda: lazyrich.save(xr.Dataset(), "nodir/x.nc"), ValueError,
         ["path='nodir/x.nc'", "not an existing directory"]),
        ("save-suffix", lambda: lazyrich.save(xr.Dataset(), "x.csv"), ValueError,
         ["path='x.csv'", "'.nc'"]),
        ("config-not-sweep", lambda: lazyrich.config(xr.Dataset()), ValueError, ["config"]),
        # measures
        ("rank-nan", lambda: lazyrich.effective_rank(np.full((3, 3), np.nan)), ValueError,
         ["W has 9 NaN"]),
        ("rank-complex", lambda: lazyrich.effective_rank(eye * 1j), TypeError, ["complex"]),
        ("rank-kind", lambda: lazyrich.effective_rank(eye, kind="soft"), ValueError,
         ["kind='soft'"]),
        ("rank-vector", lambda: lazyrich.effective_rank(np.ones(3)), ValueError,
         ["W has shape (3,)"]),
        ("rank-tol", lambda: lazyrich.effective_rank(eye, kind="hard", tol=2.0), ValueError,
         ["tol=2.0"]),
        ("rank-tol-kind", lambda: lazyrich.effective_rank(eye, tol=0.1), ValueError,
         ["tol=0.1", "kind='hard'"]),
        ("rank-eigen-nonsquare", lambda: lazyrich.effective_rank(np.ones((2, 3)),
                                                                 kind="eigenvalue"),
         ValueError, ["square"]),
        ("ntk-chunk", lambda: metrics.empirical_ntk(lambda p: p["w"], {"w": np.ones(3)},
                                                    chunk_size=0), ValueError,
         ["chunk_size=0"]),
        ("kernel-alignment-shape", lambda: metrics.kernel_alignment(eye, np.eye(2)),
         ValueError, ["(3, 3)", "(2, 2)"]),
        ("init-rank-zero", lambda: init.rank_truncated(eye, 0), ValueError, ["rank"]),
        ("init-rank-too-large", lambda: init.rank_truncated(eye, 4), ValueError, ["rank"]),
        ("check-finite-nan", lambda: check_finite("x", [1.0, np.nan]), ValueError,
         ["x has 1 NaN"]),
        ("check-finite-complex", lambda: check_finite("x", [1j]), TypeError, ["x is complex"]),
    ]


CATALOGUE = _catalogue()


@pytest.mark.parametrize("case", range(len(CATALOGUE)), ids=[c[0] for c in CATALOGUE])
def test_catalogue_refuses_with_a_named_error_and_writes_nothing(case, tmp_path, monkeypatch):
    _, call, error, fragments = CATALOGUE[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert list(tmp_path.iterdir()) == []


def test_memory_refusal_names_the_parameter_before_compiling_large_ntks(monkeypatch):
    from lazyrich.core.checks import MemoryEstimateError
    from lazyrich.measures import metrics

    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", str(64 << 20))
    with pytest.raises(MemoryEstimateError, match="lower chunk_size="):
        metrics.empirical_ntk(lambda p: p["w"], {"w": np.ones(8000)})
