"""Every bad input raises ValueError/TypeError naming the argument, the value and what is
allowed, before anything is compiled."""

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
