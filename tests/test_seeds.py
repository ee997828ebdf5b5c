"""Every accepted seed gives its own key; seeds that would wrap or be truncated are refused."""

import numpy as np
import pytest
from conftest import TINY

import lazyrich
from lazyrich.core.checks import check_seed


def test_largest_seed_is_accepted_and_differs_from_seed_zero():
    ds = lazyrich.sweep("grokking", seed=[0, 2**32 - 1], progress=False, **TINY)
    a, b = ds.test_loss.isel(seed=0).values, ds.test_loss.isel(seed=1).values
    assert not np.array_equal(a, b)
    assert list(ds.seed.values) == [0, 2**32 - 1]


@pytest.mark.parametrize("seed,error,fragment", [
    (2**32, ValueError, "seed=4294967296 is out of range"),
    (2**64 + 3, ValueError, "<= 4294967295"),
    (-1, ValueError, "seed=-1 is out of range"),
    (1.7, TypeError, "seed=1.7 is not an integer"),
    ([0, 2**32], ValueError, "seed=4294967296"),
])
def test_seeds_that_would_wrap_are_refused(seed, error, fragment):
    with pytest.raises(error, match=fragment):
        lazyrich.sweep("grokking", seed=seed, progress=False, **TINY)


def test_task_seed_of_linear_rank_is_bounded_too():
    with pytest.raises(ValueError, match="task_seed=4294967296"):
        lazyrich.sweep("linear_rank", task_seed=2**32, progress=False, steps=10, log_every=5)


def test_command_line_refuses_a_seed_that_would_wrap(tmp_path, monkeypatch, capsys):
    from lazyrich.views.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "grokking", "--seed", str(2**32), "--out", "x.nc"]) == 2
    assert "seed=4294967296" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value,error", [
    (2**32, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError), ("1", TypeError),
])
def test_check_seed_refuses(value, error):
    with pytest.raises(error, match="seed="):
        check_seed(value)


def test_check_seed_accepts_numpy_integers():
    assert check_seed(np.uint32(2**32 - 1)) == 2**32 - 1
