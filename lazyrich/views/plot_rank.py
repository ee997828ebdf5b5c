"""Figures of rank sweeps (Liu et al. 2024, Fig. 1 and Fig. 2): rich/lazy measures vs initial rank.

`rank_sweep` draws kernel alignment, representation alignment and weight change at the end of
training against the rank of the initial recurrent matrix, mean +- sd over seeds, one column per
task (an `rnn_rank` sweep). `linear_theory` draws the task-averaged kernel alignment of a
`linear_rank` sweep against rank with the closed form of Theorem 1 (`dmft.linear.rank_curve`)
over it. Both are exposed as `lazyrich.plot.rank_sweep` and `lazyrich.plot.linear_theory`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

MEASURES = {"kernel_alignment": "kernel alignment",
            "representation_alignment": "representation alignment",
            "weight_change": r"$\|W_h(T) - W_h(0)\|_F$"}


def final_values(ds: xr.Dataset, var: str) -> xr.DataArray:
    """The variable at the last step it was computed (last `ntk_step` or last `step`)."""
    values = ds[var]
    for dim in ("ntk_step", "step"):
        if dim in values.dims:
            return values.isel({dim: -1}, drop=True)
    return values


def _mean_sd_over(values: xr.DataArray, keep: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    others = [d for d in values.dims if d not in keep]
    return values.mean(others).values, values.std(others).values


def _check(ds: xr.Dataset, variables) -> None:
    if "rank" not in ds.dims:
        raise ValueError(f"the Dataset has no 'rank' axis (dims: {dict(ds.sizes)}); sweep rank "
                         f"over several values")
    missing = [v for v in variables if v not in ds]
    if missing:
        raise ValueError(f"the Dataset has no {missing}; variables: {list(ds.data_vars)}")


def rank_sweep(ds: xr.Dataset, measures=tuple(MEASURES), out: str | None = None):
    """Rich/lazy measures at the end of training vs initial rank, one column per task.

    Args:
        ds: an `rnn_rank` sweep with a `rank` axis (and optionally `task`); every other axis
            (seeds) is averaged, drawn as mean +- one standard deviation.
        measures: variables to draw, one row each.
        out: file to save the figure to.

    Returns:
        the matplotlib Figure (rows: measures; columns: tasks).
    """
    _check(ds, measures)
    tasks = list(ds["task"].values) if "task" in ds.dims else [None]
    fig, axes = plt.subplots(len(measures), len(tasks), figsize=(3.4 * len(tasks),
                                                                 2.6 * len(measures)),
                             squeeze=False, sharex=True)
    rank = ds["rank"].values
    for column, task in enumerate(tasks):
        selected = ds if task is None else ds.sel(task=task)
        for row, var in enumerate(measures):
            ax = axes[row, column]
            mean, sd = _mean_sd_over(final_values(selected, var), ("rank",))
            ax.errorbar(rank, mean, yerr=sd, fmt="o-", color=f"C{row}", capsize=3, lw=1.5)
            ax.set_xscale("log")
            if column == 0:
                ax.set_ylabel(MEASURES.get(var, var))
            if row == 0 and task is not None:
                ax.set_title(str(task))
            if row == len(measures) - 1:
                ax.set_xlabel("initial rank of W_h")
    fig.suptitle("rank sweep (mean +- sd over seeds): lower alignment, larger change = richer")
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=130)
    return fig


def linear_theory(simulation: xr.Dataset, theory: xr.Dataset, ax=None, out: str | None = None):
    """Simulated task-averaged kernel alignment vs rank (points, mean +- sd over seeds) with the
    closed form E[KA] (line) of `dmft.linear.rank_curve`.

    Args:
        simulation: a `linear_rank` sweep with `rank` and `task_seed` axes.
        theory: a Dataset with `kernel_alignment` over `rank` (other dims averaged).
        ax: Axes to draw into (a new figure if None).
        out: file to save the figure to.

    Returns:
        the matplotlib Figure.
    """
    _check(simulation, ["kernel_alignment"])
    _check(theory, ["kernel_alignment"])
    if "task_seed" not in simulation.dims:
        raise ValueError("the simulation has no 'task_seed' axis; E[KA] averages over tasks")
    fig = ax.figure if ax is not None else plt.subplots(figsize=(5.2, 4.0))[0]
    ax = ax or fig.axes[0]
    averaged = final_values(simulation, "kernel_alignment").mean("task_seed")
    mean, sd = _mean_sd_over(averaged, ("rank",))
    ax.errorbar(simulation["rank"].values, mean, yerr=sd, fmt="o", color="C0", capsize=3,
                label="simulation (mean over tasks)")
    theory_mean, _ = _mean_sd_over(theory["kernel_alignment"], ("rank",))
    ax.plot(theory["rank"].values, theory_mean, "-", color="black", lw=1.6,
            label=theory.attrs.get("theory", "theory"))
    ax.set_xscale("log")
    ax.set_xlabel("rank of W1(0)")
    ax.set_ylabel("E[kernel alignment]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=130)
    return fig
