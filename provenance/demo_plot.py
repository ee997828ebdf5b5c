"""The palimpsest demo's figures: query-test p-values against Bob's fine-tuning steps (with
Alice's training loss) and the observational tests' p-values against sampled tokens."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import xarray as xr


def plot(dataset: xr.Dataset, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """query.png (p vs fine-tuning steps) and observational.png (p vs sampled tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finetunes = dataset.sel(model=dataset.finetune_steps >= 0)
    independent = dataset.sel(model="independent")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for variable, label in (("query_log10_p", "normalised by reference"),
                            ("query_log10_p_raw", "raw log-likelihood")):
        line, = axes[0].plot(np.maximum(finetunes.finetune_steps, 0.5),
                             10.0 ** finetunes[variable], "o-", label=f"fine-tunes, {label}")
        axes[0].axhline(10.0 ** float(independent[variable]), color=line.get_color(), ls=":",
                        label=f"independent model, {label}")
    axes[0].axhline(1e-8, color="gray", lw=0.5, label="1e-8 (the paper's typical fine-tune)")
    axes[0].set(xscale="log", yscale="log", xlabel="Bob's fine-tuning steps (Alice's own at 0.5)",
                ylabel="query-test p-value", title="Query test")
    axes[0].legend(fontsize=7)
    axes[1].plot(dataset.alice_loss, lw=0.8)
    axes[1].set(xlabel="Alice's step", ylabel="loss (nats per byte)", title="Alice's training")
    figure.tight_layout()
    paths = [out_dir / "query.png", out_dir / "observational.png"]
    figure.savefig(paths[0], dpi=120)
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(6, 4))
    for test, marker in (("span", "o"), ("retrain_z", "s"), ("retrain_rank", "^")):
        for source, style in (("derived", "-"), ("independent", ":")):
            axis.plot(dataset.tokens, 10.0 ** dataset[f"{test}_log10_p"].sel(source=source),
                      marker + style, label=f"{test}, text from {source} model")
    axis.axhline(1e-3, color="gray", lw=0.5)
    copies = json.loads(dataset.attrs["config"])["n_copies"]
    axis.axhline(1 / (copies + 1), color="gray", lw=0.5, ls="--",
                 label=f"1/(K+1): smallest rank-test p with K = {copies}")
    axis.set(xscale="log", yscale="log", xlabel="sampled tokens (bytes)", ylabel="p-value",
             title="Observational tests")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(paths[1], dpi=120)
    plt.close(figure)
    return paths
