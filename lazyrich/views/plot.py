"""Figures of sweep results: learning curves per output scale, target alignment over time, and
theory laid over simulation (`compare`).

Every function takes the `xarray.Dataset` that `lazyrich.sweep` returns (or `lazyrich.load`
reads) and needs no other bookkeeping: colours follow one sweep axis, and every other sweep axis
(seeds, typically) is averaged, drawn as mean +- one standard deviation.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from lazyrich.views.plot_rank import linear_theory as linear_theory
from lazyrich.views.plot_rank import rank_sweep as rank_sweep

AVERAGED_AXIS = "seed"


def _colour_axis(ds: xr.Dataset, colour_by: str | None) -> str | None:
    axes = [d for d in ds.dims if d != "step"]
    if colour_by is not None:
        if colour_by not in axes:
            raise ValueError(f"colour_by={colour_by!r} is not a sweep axis of this Dataset; "
                             f"its axes are {axes}")
        return colour_by
    others = [d for d in axes if d != AVERAGED_AXIS]
    return others[0] if others else None


def _mean_sd(curve: xr.DataArray, keep: list[str]) -> tuple[np.ndarray, np.ndarray]:
    others = [d for d in curve.dims if d not in keep]
    return curve.mean(others).values, curve.std(others).values


def _label(axis: str | None, value) -> str | None:
    if axis is None:
        return None
    if isinstance(value, float | np.floating):
        return f"{axis}={value:g}"
    return f"{axis}={value}"


def _draw(ax, ds: xr.Dataset, var: str, colour_axis: str | None, style: str,
          labelled: bool) -> None:
    step = ds["step"].values
    shown = step > 0
    values = ds[colour_axis].values if colour_axis else [None]
    for i, value in enumerate(values):
        curve = ds[var] if value is None else ds[var].sel({colour_axis: value})
        mean, sd = _mean_sd(curve, ["step"])
        colour = f"C{i % 10}"
        ax.plot(step[shown], mean[shown], style, color=colour, lw=1.6,
                label=_label(colour_axis, value) if labelled else None)
        if np.any(sd[shown] > 0):
            ax.fill_between(step[shown], (mean - sd)[shown], (mean + sd)[shown], color=colour,
                            alpha=0.15, lw=0)


def _train_and_test(ax, ds: xr.Dataset, colour_axis: str | None, quantity: str,
                    single_title: str, labelled: bool) -> None:
    """train_<quantity> dashed and test_<quantity> solid, or the one `quantity` curve."""
    if f"train_{quantity}" in ds and f"test_{quantity}" in ds:
        _draw(ax, ds, f"train_{quantity}", colour_axis, "--", labelled=False)
        _draw(ax, ds, f"test_{quantity}", colour_axis, "-", labelled=labelled)
        ax.set_title(f"train (dashed) and test (solid) {quantity}")
    else:
        _draw(ax, ds, quantity, colour_axis, "-", labelled=labelled)
        ax.set_title(single_title)


def _loss_panel(ax, ds: xr.Dataset, colour_axis: str | None) -> None:
    _train_and_test(ax, ds, colour_axis, "loss", "training loss", labelled=True)
    if "kernel_test_loss" in ds:
        ax.axhline(float(ds["kernel_test_loss"].mean()), color="grey", ls=":", lw=1.5,
                   label="kernel regression (initial NTK)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    cross_entropy = ds.attrs.get("loss") == "cross_entropy"
    ax.set_ylabel("loss" if "loss" in ds else "cross-entropy" if cross_entropy
                  else "mean squared error")
    ax.legend(fontsize=8, loc="lower left")


def _accuracy_panel(ax, ds: xr.Dataset, colour_axis: str | None) -> None:
    _train_and_test(ax, ds, colour_axis, "accuracy", "accuracy", labelled=False)
    ax.set_xscale("log")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)


def _alignment_panel(ax, ds: xr.Dataset, colour_axis: str | None) -> None:
    _draw(ax, ds, "alignment", colour_axis, "-", labelled=False)
    ax.set_xscale("log")
    ax.set_ylabel(r"$\beta^\top M \beta \,/\, (|\beta|^2 \|M\|_F)$")
    ax.set_title("alignment of the learned quadratic form with the target")
    ax.set_ylim(0, 1.02)


def learning_curves(ds: xr.Dataset, colour_by: str | None = None, out: str | None = None):
    """Loss curves per value of one axis, and accuracy and target alignment where logged.

    Panels, left to right: train (dashed) and test (solid) loss (or `loss` alone, e.g. rank
    sweeps); train and test accuracy (or `accuracy`) if the experiment logs it (digits, modular,
    rnn_rank); the target alignment if logged (grokking).

    Args:
        ds: a sweep result with `train_loss` and `test_loss`, or `loss`, over `step` (and
            optionally `train_accuracy`/`test_accuracy` or `accuracy`, `alignment`,
            `kernel_test_loss`).
        colour_by: the sweep axis that sets the colour (default: the first axis other than
            `seed`); every other axis is averaged (mean +- sd band).
        out: if given, the figure is written there (PNG, PDF, ...).

    Returns:
        the matplotlib Figure.
    """
    if not ({"train_loss", "test_loss"} <= set(ds.data_vars) or "loss" in ds):
        raise ValueError(f"the Dataset has neither train_loss and test_loss nor loss; "
                         f"learning_curves needs them over step (variables: "
                         f"{list(ds.data_vars)})")
    colour_axis = _colour_axis(ds, colour_by)
    panels = [_loss_panel]
    if {"train_accuracy", "test_accuracy"} <= set(ds.data_vars) or "accuracy" in ds:
        panels.append(_accuracy_panel)
    if "alignment" in ds:
        panels.append(_alignment_panel)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        panel(ax, ds, colour_axis)
        ax.set_xlabel("step")
    title = ds.attrs.get("experiment", "")
    if "D" in ds.attrs and "N" in ds.attrs and "P" in ds.attrs:
        title += f"  (D={ds.attrs['D']}, N={ds.attrs['N']}, P={ds.attrs['P']})"
    fig.suptitle(title)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=130)
    return fig


def _time_of(ds: xr.Dataset, selection: dict) -> np.ndarray:
    if "time" not in ds.coords:
        raise ValueError("compare needs a `time` coordinate on both Datasets (sweep results "
                         "get one from their experiment's time scale, e.g. step x lr_scale)")
    time = ds["time"]
    return time.sel({k: v for k, v in selection.items() if k in time.dims}).values


def time_label(ds: xr.Dataset) -> str:
    """Axis label of the `time` coordinate, from the description the engine gives it (the
    experiment's time scale: "step x lr_scale", "step x batch_size / D ...")."""
    description = ds["time"].attrs.get("description") if "time" in ds.coords else None
    return f"time = {description}" if description else "time"


def compare(theory: xr.Dataset, simulation: xr.Dataset, var: str = "test_loss",
            colour_by: str = "alpha", ax=None, out: str | None = None):
    """Theory curves (lines) over simulation curves (mean +- sd over the other axes).

    Args:
        theory: Dataset with `var` and a `time` coordinate (over `step` or its own `time`
            dimension, e.g. from `dmft`); if
            it has the `colour_by` dimension each value gets its own line in that value's
            colour, otherwise one black line serves every value (a theory independent of it,
            such as the lazy limit). Any other theory dimension (seeds) is averaged.
        simulation: a `lazyrich.sweep` result with `var` and `time`.
        var: the variable to compare.
        colour_by: the axis whose values share colours between theory and simulation.
        ax: matplotlib Axes to draw into (a new figure if None).
        out: file to save the figure to.

    Returns:
        the matplotlib Figure. The time axis is logarithmic (time 0 is left out).
    """
    for name, ds in (("theory", theory), ("simulation", simulation)):
        if var not in ds:
            raise ValueError(f"the {name} Dataset has no {var!r} (variables: "
                             f"{list(ds.data_vars)})")
    fig = ax.figure if ax is not None else plt.subplots(figsize=(6.4, 4.6))[0]
    ax = ax or fig.axes[0]
    values = simulation[colour_by].values if colour_by in simulation.dims else [None]
    for i, value in enumerate(values):
        selection = {} if value is None else {colour_by: value}
        sim = simulation[var].sel(selection)
        mean, sd = _mean_sd(sim, ["step"])
        time = _time_of(simulation, selection)
        shown = time > 0
        colour = f"C{i % 10}"
        ax.plot(time[shown], mean[shown], "o", ms=3, color=colour,
                label=f"simulation, {_label(colour_by, value)}" if value is not None
                else "simulation")
        ax.fill_between(time[shown], (mean - sd)[shown], (mean + sd)[shown], color=colour,
                        alpha=0.2, lw=0)
        if colour_by in theory.dims:
            curve = theory[var].sel(selection)
            theory_mean, _ = _mean_sd(curve, [theory["time"].dims[-1]])
            theory_time = _time_of(theory, selection)
            keep = theory_time > 0
            ax.plot(theory_time[keep], theory_mean[keep], "-", color=colour, lw=1.8,
                    label=theory.attrs.get("theory", "theory") if i == 0 else None)
    if colour_by not in theory.dims:
        theory_mean, _ = _mean_sd(theory[var], [theory["time"].dims[-1]])
        theory_time = _time_of(theory, {})
        keep = theory_time > 0
        ax.plot(theory_time[keep], theory_mean[keep], "-", color="black", lw=1.8,
                label=theory.attrs.get("theory", "theory"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(time_label(simulation))
    ax.set_ylabel(var)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=130)
    return fig
