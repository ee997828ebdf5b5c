"""The grokking phase diagram from a saved `lazyrich phase` file: simulated and closed-form
grokking times against alpha, one line per value of the second axis (P/D or eps), their ratio,
and the simulated train-to-test delay."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from lazyrich.core.io import load  # noqa: E402


def phase_diagram(source, out: str | None = None):
    """Draw a `lazyrich phase` Dataset (or the path of its netCDF file); returns the Figure.

    Panels: t_half_test of the simulation (points, mean +- sd over seeds), of the closed form
    (lines) and, when the file has it (`--dmft`), of the DMFT (crosses, dashed) vs alpha
    (log-log); simulation over each theory; the delay t_half_test - t_half_train (closed
    form S14 as lines where the file has theory_delay).
    """
    ds = load(source) if isinstance(source, str) else source
    if not isinstance(ds, xr.Dataset) or "t_half_test" not in ds:
        raise ValueError("phase_diagram needs a Dataset written by `lazyrich phase` (with "
                         "t_half_test)")
    if "theory_t_half_test" not in ds:
        return _empirical(ds, out)
    axis = ds.attrs.get("axis", "P_over_D")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colours = plt.cm.viridis(np.linspace(0.1, 0.85, ds.sizes[axis]))
    alpha = ds.alpha.values
    for colour, value in zip(colours, ds[axis].values, strict=True):
        point = ds.sel({axis: value})
        label = f"{axis} = {value:g}"
        sim = point.t_half_test
        axes[0].errorbar(alpha, sim.mean("seed"), yerr=sim.std("seed"), fmt="o", color=colour,
                         label=f"simulation, {label}")
        axes[0].plot(alpha, point.theory_t_half_test, "-", color=colour)
        axes[1].plot(alpha, point.ratio, "o-", color=colour, label=f"/ closed form, {label}")
        if "dmft_t_half_test" in ds:
            axes[0].plot(alpha, point.dmft_t_half_test, "x--", color=colour, ms=7,
                         label=f"DMFT, {label}")
            axes[1].plot(alpha, point.dmft_ratio, "x--", color=colour, ms=7,
                         label=f"/ DMFT, {label}")
        delay = point.delay
        axes[2].errorbar(alpha, delay.mean("seed"), yerr=delay.std("seed"), fmt="o",
                         color=colour, label=f"simulation, {label}")
        if "theory_delay" in ds:
            axes[2].plot(alpha, point.theory_delay, "-", color=colour)
        if "dmft_delay" in ds:
            axes[2].plot(alpha, point.dmft_delay, "x--", color=colour, ms=7,
                         label=f"DMFT, {label}")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("output scale alpha")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("grokking time t_half_test (step x lr_scale)")
    dmft = ", x: DMFT" if "dmft_t_half_test" in ds else ""
    axes[0].set_title(f"points: simulation ({ds.attrs.get('method', '?')}), lines: closed "
                      f"form{dmft}", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="grey", lw=0.8)
    axes[1].set_ylabel("simulation / theory")
    axes[1].legend(fontsize=7)
    axes[1].set_title(f"D = {ds.attrs.get('D', '?')}")
    axes[2].set_ylabel("delay t_half_test - t_half_train")
    axes[2].set_title("points: simulation, lines: closed form (S14)", fontsize=9)
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=110)
        plt.close(fig)
    return fig


def _empirical(ds: xr.Dataset, out: str | None):
    """`lazyrich phase digits|modular`: half times of train / test error and their delay vs
    the scale (mean +- sd over every other dim)."""
    scale = ds.attrs.get("axis", list(ds.t_half_test.dims)[0])
    others = [d for d in ds.t_half_test.dims if d != scale]
    fig, (times, delay) = plt.subplots(1, 2, figsize=(9, 3.6))
    for var, marker in (("t_half_train", "s--"), ("t_half_test", "o-")):
        times.errorbar(ds[scale], ds[var].mean(others), yerr=ds[var].std(others), fmt=marker,
                       label=var.replace("t_half_", "") + " error halved")
    delay.errorbar(ds[scale], ds.delay.mean(others), yerr=ds.delay.std(others), fmt="o-")
    times.set(xscale="log", yscale="log", xlabel=scale, ylabel="step")
    times.legend(fontsize=8)
    delay.set(xscale="log", xlabel=scale, ylabel="delay (steps), test - train",
              title=ds.attrs.get("experiment", ""))
    fig.tight_layout()
    if out is not None:
        fig.savefig(out, dpi=110)
        plt.close(fig)
    return fig


def phase_figure(out_dir: str) -> str:
    """Grokking phase diagram: grokking time and delay vs alpha and P/D, simulation beside the
    closed form (the README's `lazyrich phase grokking` command)."""
    import os

    from lazyrich.views.cli_phase import PHASE, grokking_phase

    path = os.path.join(out_dir, "phase.png")
    phase_diagram(grokking_phase(**PHASE, progress=False), out=path)
    return path
