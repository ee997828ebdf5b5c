"""The figure gallery: one PNG per experiment at sizes that run in about a minute on 2 CPU cores.

`lazyrich gallery --out docs/figures/` regenerates them; the README shows them. Each entry is a
function (out_dir) -> path of the PNG it wrote. Figures that lay theory over simulation import
`dmft` here, in the application layer, never inside the simulator's modules.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np

from lazyrich.core.engine import sweep
from lazyrich.views.cli_stages import Stages
from lazyrich.views.plot import compare, learning_curves
from lazyrich.views.plot_phase import phase_figure

# The `make demo` sweep (`lazyrich demo`): about a minute on 2 CPU cores.
DEMO = {
    "alpha": [0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
    "seed": [0, 1],
    "D": 40, "N": 200, "P": 200, "eps": 0.02, "lr_scale": 0.5,
    "steps": 40_000, "log_every": 40,
}


def grokking_figure(out_dir: str) -> str:
    """alpha sweep of the grokking model (the `make demo` figure at half its length)."""
    ds = sweep("grokking", progress=False, **{**DEMO, "steps": 20_000, "log_every": 40})
    path = os.path.join(out_dir, "grokking.png")
    learning_curves(ds, colour_by="alpha", out=path)
    plt.close("all")
    return path


def teacher_figure(out_dir: str) -> str:
    """Online SGD of a 2-unit soft committee against the Saad-Solla ODEs, two learning rates."""
    from dmft.committee import solve

    dim, t_max = 400, 60.0
    steps = int(t_max * dim)
    sim = sweep("teacher", lr=[0.5, 1.5], seed=[0, 1, 2], D=dim, steps=steps,
                log_every=steps // 60, init_scale=0.3, progress=False)
    start = sim.isel(step=0, lr=0)
    theory = solve(sim.lr.values, start.Q.values, start.R.values, sim.T.isel(lr=0).values,
                   t_max=t_max, dt=0.02, log_every=50, batch_dims=("seed",))
    fig = compare(theory, sim, var="generalisation_error", colour_by="lr")
    ax = fig.axes[0]
    ax.set_title(f"committee K = M = 2, D = {dim}: SGD vs ODE", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out_dir, "teacher.png")
    fig.savefig(path, dpi=130)
    plt.close("all")
    return path


def rank_figure(out_dir: str) -> str:
    """KA, RA and weight change vs initial rank for a small ReLU RNN on 2AF and DMS."""
    from lazyrich.views.plot import rank_sweep

    ds = sweep("rnn_rank", task=["2AF", "DMS"], rank=[1, 8, 64], seed=[0, 1, 2], N=64,
               steps=1000, log_every=100, progress=False)
    path = os.path.join(out_dir, "rank_sweep.png")
    rank_sweep(ds, out=path)
    plt.close("all")
    return path


def linear_rank_figure(out_dir: str) -> str:
    """Two-layer linear nets: simulated task-averaged kernel alignment vs rank, and E[KA]."""
    from dmft.linear import rank_curve
    from lazyrich.views.plot import linear_theory

    ranks = [1, 2, 5, 10, 20]
    sim = sweep("linear_rank", rank=ranks, task_seed=range(100), steps=600, progress=False)
    path = os.path.join(out_dir, "linear_rank.png")
    linear_theory(sim, rank_curve(ranks), out=path)
    plt.close("all")
    return path


def _grokking_delay_figure(ds, scale: str, title: str, path: str) -> str:
    """Left: train (dashed) and test (solid) accuracy per value of `scale`, mean over seeds;
    right: the steps at which each reaches 90% of its final value, against `scale`."""
    from lazyrich.experiments.classification import rise_step

    fig, (curves, delays) = plt.subplots(1, 2, figsize=(10, 3.8))
    logged = ds.isel(step=slice(1, None))  # step 0 off the log axis
    colours = plt.cm.viridis(np.linspace(0, 0.9, ds.sizes[scale]))
    averaged = [d for d in ds.train_accuracy.dims if d not in (scale, "step")]
    for colour, value in zip(colours, ds[scale].values, strict=True):
        point = logged.sel({scale: value})
        for var, style in (("train_accuracy", "--"), ("test_accuracy", "-")):
            curves.plot(logged.step, point[var].mean(averaged), style, color=colour,
                        label=f"{scale} = {value:g}" if var == "test_accuracy" else None)
    curves.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(0, 1.02),
               title="train (dashed) and test (solid) accuracy")
    curves.legend(fontsize=8)
    for var, marker in (("train_accuracy", "s--"), ("test_accuracy", "o-")):
        delays.plot(ds[scale], rise_step(ds[var]).mean(averaged), marker,
                    label=var.replace("_", " "))
    delays.set(xscale="log", yscale="log", xlabel=scale, ylabel="step reaching 90% of final",
               title="grokking delay grows with the scale")
    delays.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close("all")
    return path


def digits_figure(out_dir: str) -> str:
    """MLP on scikit-learn's digits, output scale 1 to 30 (not centred, MSE, no weight decay)."""
    ds = sweep("digits", output_scale=[1.0, 3.0, 10.0, 30.0], seed=[0, 1], width=128,
               n_train=200, n_test=1000, steps=8000, log_every=40, progress=False)
    return _grokking_delay_figure(
        ds, "output_scale", "MLP on 8x8 digits (200 train images, width 128, MSE, no weight "
        "decay)", os.path.join(out_dir, "digits.png"))


def modular_figure(out_dir: str) -> str:
    """The notebook's quadratic MLP on addition mod 23, four scales (lr 400 to be CI-sized)."""
    ds = sweep("modular", scale=[0.25, 0.5, 1.0, 1.5], p=23, lr=400.0, steps=12_000,
               log_every=100, progress=False)
    return _grokking_delay_figure(
        ds, "scale", "quadratic MLP on (a + b) mod 23 (90% of pairs trained, MSE, SGD lr 400 / "
        "scale^2)", os.path.join(out_dir, "modular.png"))


FIGURES: dict[str, Callable[[str], str]] = {
    "grokking": grokking_figure,
    "digits": digits_figure,
    "modular": modular_figure,
    "teacher": teacher_figure,
    "rank_sweep": rank_figure,
    "linear_rank": linear_rank_figure,
    "phase": phase_figure,
}


def make_gallery(out_dir: str, names: list[str] | None = None,
                 stages: Stages | None = None) -> list[str]:
    """Write the chosen (default: all) gallery figures into out_dir; returns their paths.

    With `stages`, each figure is reported as it starts (with its elapsed time when done) and the
    files written are listed at the end (what `lazyrich gallery` prints).
    """
    names = list(FIGURES) if names is None else names
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown gallery figures {unknown}; available: {list(FIGURES)}")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name in names:
        summary = (FIGURES[name].__doc__ or "").strip().splitlines()[0]
        with stages.stage(f"{name}: {summary}") if stages else contextlib.nullcontext():
            paths.append(FIGURES[name](out_dir))
    if stages:
        stages.wrote(paths)
    return paths
