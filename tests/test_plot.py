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


def test_compare_draws_theory_lines_over_simulation_points(result, tmp_path):
    """A theory with an alpha dimension gets one line per alpha in the simulation's colours;
    an alpha-independent theory gets one black line."""
    per_alpha = result[["test_loss"]].mean("seed")
    figure = lazyrich.plot.compare(per_alpha, result, var="test_loss", out=tmp_path / "c.png")
    ax = figure.axes[0]
    lines = [line for line in ax.lines if line.get_linestyle() == "-"]
    points = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(lines) == 2 and len(points) == 2
    assert [line.get_color() for line in lines] == [point.get_color() for point in points]
    assert ax.get_xscale() == "log"
    shared = result[["test_loss"]].isel(alpha=0, drop=True)
    ax = lazyrich.plot.compare(shared, result).axes[0]
    assert [line.get_color() for line in ax.lines if line.get_linestyle() == "-"] == ["black"]


def test_compare_needs_the_variable_and_time(result):
    with pytest.raises(ValueError, match="no 'v_norm3'"):
        lazyrich.plot.compare(result, result, var="v_norm3")
    with pytest.raises(ValueError, match="time"):
        lazyrich.plot.compare(result.drop_vars("time"), result.drop_vars("time"))


def test_compare_draws_a_dmft_solution_per_alpha(result):
    """A dmft.grokking.solve result (alpha, eps, target_scale, time) gets one line per alpha:
    its own time axis, the mean over the other theory axes."""
    import numpy as np
    import xarray as xr

    time = np.linspace(0.0, float(result.time.max()), 7)
    values = np.arange(2 * 1 * 2 * 7, dtype=float).reshape(2, 1, 2, 7) + 1.0
    theory = xr.Dataset({"test_loss": (("alpha", "eps", "target_scale", "time"), values)},
                        coords={"alpha": [0.5, 2.0], "eps": [0.02], "target_scale": [0.9, 1.1],
                                "time": time})
    ax = lazyrich.plot.compare(theory, result).axes[0]
    lines = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len(lines) == 2
    np.testing.assert_allclose(lines[1].get_xdata(), time[1:])
    np.testing.assert_allclose(lines[1].get_ydata(), values[1, 0].mean(axis=0)[1:])


def test_compare_labels_time_with_the_experiments_own_time_unit(result):
    """The x label is the `time` coordinate's description, set by the engine from the
    experiment's time scale: step x lr_scale for grokking, examples / D for the teacher."""
    ax = lazyrich.plot.compare(result[["test_loss"]], result).axes[0]
    assert ax.get_xlabel() == "time = step x lr_scale"
    teacher = lazyrich.sweep("teacher", lr=[0.5, 1.0], D=8, steps=8, log_every=4,
                             progress=False)
    ax = lazyrich.plot.compare(teacher[["generalisation_error"]].mean("lr"), teacher,
                               var="generalisation_error", colour_by="lr").axes[0]
    assert ax.get_xlabel().startswith("time = step x batch_size / D")
    assert "examples seen per input dimension" in ax.get_xlabel()


@pytest.mark.parametrize("experiment, params, accuracy_lines", [
    ("modular", {"scale": [0.5, 1.0], "p": 5, "width": 8}, 4),   # train and test accuracy
    ("rnn_rank", {"rank": [1, 2], "N": 8, "eval_batches": 1, "batch_size": 2}, 2),  # accuracy
])
def test_learning_curves_add_an_accuracy_panel_where_the_experiment_logs_accuracy(
        experiment, params, accuracy_lines):
    """Experiments that log accuracy get a second panel with one line per logged accuracy
    variable and colour-axis value, on [0, 1]; rank sweeps (`loss` only) draw their loss."""
    ds = lazyrich.sweep(experiment, steps=4, log_every=2, progress=False, **params)
    loss_axes, accuracy_axes = lazyrich.plot.learning_curves(ds).axes
    assert accuracy_axes.get_ylabel() == "accuracy" and accuracy_axes.get_ylim() == (0, 1.02)
    assert len(accuracy_axes.lines) == accuracy_lines
    assert len(loss_axes.lines) == accuracy_lines
