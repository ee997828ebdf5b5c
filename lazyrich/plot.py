"""Figures of sweep results: learning curves per output scale, target alignment over time.

Every function takes the `xarray.Dataset` that `lazyrich.sweep` returns (or `lazyrich.load`
reads) and needs no other bookkeeping: colours follow one sweep axis, and every other sweep axis
(seeds, typically) is averaged, drawn as mean +- one standard deviation.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

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


def learning_curves(ds: xr.Dataset, colour_by: str | None = None, out: str | None = None):
    """Train (dashed) and test (solid) loss per value of one axis, and the target alignment.

    Args:
        ds: a `grokking`-like sweep result with `train_loss`, `test_loss` (and optionally
            `alignment`, `kernel_test_loss`) over `step`.
        colour_by: the sweep axis that sets the colour (default: the first axis other than
            `seed`); every other axis is averaged (mean +- sd band).
        out: if given, the figure is written there (PNG, PDF, ...).

    Returns:
        the matplotlib Figure.
    """
    for var in ("train_loss", "test_loss"):
        if var not in ds:
            raise ValueError(f"the Dataset has no {var!r}; learning_curves needs train_loss and "
                             f"test_loss over step (variables: {list(ds.data_vars)})")
    colour_axis = _colour_axis(ds, colour_by)
    panels = 2 if "alignment" in ds else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.4), squeeze=False)
    ax = axes[0, 0]
    _draw(ax, ds, "train_loss", colour_axis, "--", labelled=False)
    _draw(ax, ds, "test_loss", colour_axis, "-", labelled=True)
    if "kernel_test_loss" in ds:
        ax.axhline(float(ds["kernel_test_loss"].mean()), color="grey", ls=":", lw=1.5,
                   label="kernel regression (initial NTK)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("mean squared error")
    ax.set_title("train (dashed) and test (solid) loss")
    ax.legend(fontsize=8, loc="lower left")
    if panels == 2:
        ax = axes[0, 1]
        _draw(ax, ds, "alignment", colour_axis, "-", labelled=False)
        ax.set_xscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(r"$\beta^\top M \beta \,/\, (|\beta|^2 \|M\|_F)$")
        ax.set_title("alignment of the learned quadratic form with the target")
        ax.set_ylim(0, 1.02)
    title = ds.attrs.get("experiment", "")
    if "D" in ds.attrs and "N" in ds.attrs and "P" in ds.attrs:
        title += f"  (D={ds.attrs['D']}, N={ds.attrs['N']}, P={ds.attrs['P']})"
    fig.suptitle(title)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=130)
    return fig
