"""Rank-sweep figures: what is drawn equals the seed means of the Dataset."""

import matplotlib
import numpy as np
import pytest
import xarray as xr

import lazyrich

matplotlib.use("Agg")

RANKS = [1, 30, 100, 300]


def _rnn_like():
    rng = np.random.default_rng(0)
    shape = (2, 4, 3)
    dims = ("task", "rank", "seed")
    coords = {"task": ["2AF", "DMS"], "rank": RANKS, "seed": [0, 1, 2], "ntk_step": [0, 100],
              "step": [0, 50, 100]}
    return xr.Dataset({
        "kernel_alignment": (dims + ("ntk_step",), rng.uniform(size=shape + (2,))),
        "representation_alignment": (dims + ("ntk_step",), rng.uniform(size=shape + (2,))),
        "weight_change": (dims + ("step",), rng.uniform(size=shape + (3,))),
    }, coords=coords)


def test_rank_sweep_draws_seed_means_of_the_last_values_one_column_per_task(tmp_path):
    ds = _rnn_like()
    figure = lazyrich.plot.rank_sweep(ds, out=tmp_path / "rank.png")
    assert len(figure.axes) == 3 * 2
    first = figure.axes[0]  # kernel alignment, 2AF
    x, y = first.lines[0].get_data()
    np.testing.assert_array_equal(x, RANKS)
    expected = ds.kernel_alignment.sel(task="2AF").isel(ntk_step=-1).mean("seed").values
    np.testing.assert_allclose(y, expected)
    change = figure.axes[5].lines[0].get_data()[1]  # weight change, DMS: last logged step
    np.testing.assert_allclose(change, ds.weight_change.sel(task="DMS").isel(step=-1)
                               .mean("seed").values)
    assert first.get_title() == "2AF" and first.get_xscale() == "log"
    assert (tmp_path / "rank.png").stat().st_size > 10_000


def test_linear_theory_overlays_the_closed_form():
    rng = np.random.default_rng(1)
    simulation = xr.Dataset(
        {"kernel_alignment": (("rank", "task_seed", "step"), rng.uniform(size=(4, 5, 2)))},
        coords={"rank": RANKS, "task_seed": range(5), "step": [0, 10]})
    theory = xr.Dataset({"kernel_alignment": (("seed", "rank"), rng.uniform(size=(2, 4)))},
                        coords={"seed": [0, 1], "rank": RANKS}, attrs={"theory": "Theorem 1"})
    ax = lazyrich.plot.linear_theory(simulation, theory).axes[0]
    points = ax.lines[0].get_data()[1]
    line = [line for line in ax.lines if line.get_linestyle() == "-"][-1].get_data()[1]
    np.testing.assert_allclose(points, simulation.kernel_alignment.isel(step=-1)
                               .mean("task_seed").values)
    np.testing.assert_allclose(line, theory.kernel_alignment.mean("seed").values)
    assert "Theorem 1" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_rank_plots_refuse_datasets_without_rank_or_variables():
    ds = _rnn_like()
    with pytest.raises(ValueError, match="no 'rank' axis"):
        lazyrich.plot.rank_sweep(ds.isel(rank=0))
    with pytest.raises(ValueError, match="sign_similarity"):
        lazyrich.plot.rank_sweep(ds, measures=("sign_similarity",))
    with pytest.raises(ValueError, match="task_seed"):
        lazyrich.plot.linear_theory(ds, ds)
