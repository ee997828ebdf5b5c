"""`python -m dmft.grokking_grid --load FILE`: the tables of a saved grid without simulating,
and the refusal of a file whose step-0 train loss is not finite."""

import sys

import numpy as np
import pytest

from dmft import grokking_grid


@pytest.fixture(scope="module")
def saved_grid(tmp_path_factory):
    runs = grokking_grid.simulate_grid(10, 8, range(2), steps=400, log_every=50)
    path = tmp_path_factory.mktemp("grid") / "grid.npz"
    np.savez_compressed(path, alpha=grokking_grid.GRID["alpha"],
                        **{f"D10_lam8_{name}": value for name, value in runs.items()})
    return path, runs


def test_load_prints_the_three_tables(saved_grid, monkeypatch, capsys):
    path, runs = saved_grid
    monkeypatch.setattr(sys, "argv", ["grokking_grid", "--load", str(path)])
    grokking_grid.main()
    out = capsys.readouterr().out
    assert "D=10 P/D=8" in out and "train half time" in out and "delay" in out
    train, delay, share = grokking_grid.train_and_delay_errors(runs, 10, 8)
    assert train.shape == delay.shape == share.shape == (7, 3)
    loaded = grokking_grid.load_grid(str(path))[(10, 8.0)]
    np.testing.assert_array_equal(loaded["train_loss"], runs["train_loss"])


def test_a_grid_with_a_non_finite_first_record_is_refused(saved_grid, tmp_path):
    path, runs = saved_grid
    broken = dict(runs)
    broken["train_loss"] = runs["train_loss"].copy()
    broken["train_loss"][..., 0] = np.inf
    bad = tmp_path / "bad.npz"
    np.savez_compressed(bad, **{f"D10_lam8_{k}": v for k, v in broken.items()})
    with pytest.raises(ValueError, match="bad.npz.*non-finite step-0"):
        grokking_grid.load_grid(str(bad))
