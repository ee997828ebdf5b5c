"""Learning-curve figures from sweep results."""

import matplotlib
import pytest
from conftest import TINY

import lazyrich

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def result():
    return lazyrich.sweep("grokking", alpha=[0.5, 2.0], seed=[0, 1], progress=False, **TINY)


def test_learning_curves_draw_one_line_pair_per_alpha_and_an_alignment_panel(result, tmp_path):
    figure = lazyrich.plot.learning_curves(result, out=tmp_path / "fig.png")
    loss_axes, alignment_axes = figure.axes
    assert len(loss_axes.lines) == 4 and len(alignment_axes.lines) == 2
    assert loss_axes.get_xscale() == "log"
    assert [t.get_text() for t in loss_axes.get_legend().get_texts()] == ["alpha=0.5", "alpha=2"]
    assert (tmp_path / "fig.png").stat().st_size > 10_000


def test_learning_curves_refuse_unknown_axes_and_missing_variables(result):
    with pytest.raises(ValueError, match="colour_by='width'"):
        lazyrich.plot.learning_curves(result, colour_by="width")
    with pytest.raises(ValueError, match="train_loss"):
        lazyrich.plot.learning_curves(result.drop_vars("train_loss"))
