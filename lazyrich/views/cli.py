"""The `lazyrich` command line: run a sweep to netCDF, plot a result, run the demo.

    lazyrich run grokking --alpha 0.125 1 8 --seed 0 1 --steps 60000 --out run.nc
    lazyrich plot run.nc --out fig.png
    lazyrich compare grokking --alpha 1 8 64 --seed 0 1 --out fig.png   # DMFT over simulation
    lazyrich compare grokking --theory kernel --alpha 1 8 --out fig.png  # lazy limit instead
    lazyrich demo                      # what `make demo` runs
    lazyrich gallery --out docs/figures/   # one PNG per experiment
    lazyrich experiments               # every experiment with its parameters

In `run`, a parameter given several values becomes a sweep axis, in command-line order; one value
fixes it for every run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from lazyrich.core.engine import sweep
from lazyrich.core.io import load, save
from lazyrich.experiments.base import Parameter, get_experiment, registered


def _converter(name: str, spec: Parameter):
    def convert(text: str):
        if spec.kind == "bool":
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise argparse.ArgumentTypeError(f"--{name} {text!r}: expected true or false")
            return lowered in ("true", "1")
        if spec.kind == "choice":
            return text
        try:
            return int(text) if spec.kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} {text!r}: expected {spec.allowed()}") \
                from None
    return convert


def _sweep_from_command_line(command: str, argv: Sequence[str], out_help: str):
    """Parse `EXPERIMENT --PARAM VALUE... --out FILE` and run the sweep.

    Returns (experiment, parsed arguments, Dataset), or an exit status when the input is bad.
    """
    if not argv or argv[0].startswith("-"):
        print(f"usage: lazyrich {command} EXPERIMENT [--PARAM VALUE ...] --out FILE\n"
              f"experiments: {sorted(registered())}", file=sys.stderr)
        return 2
    try:
        experiment = get_experiment(argv[0])
    except ValueError as error:
        print(f"lazyrich {command}: {error}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog=f"lazyrich {command} {experiment.name}",
                                     description=experiment.doc)
    parser.add_argument("--out", required=True, help=out_help)
    parser.add_argument("--chunk-size", type=int, default=None, help="runs computed at once")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for name, spec in experiment.parameters.items():
        parser.add_argument(f"--{name}", type=_converter(name, spec),
                            nargs="+" if spec.sweepable else None,
                            help=f"{spec.doc} ({spec.allowed()}; default {spec.default!r})")
    args = parser.parse_args(argv[1:])
    given = [token[2:] for token in argv[1:] if token.startswith("--")]
    params = {}
    for name in sorted(experiment.parameters, key=lambda n: given.index(n) if n in given else 0):
        value = getattr(args, name)
        if value is not None:
            params[name] = value[0] if isinstance(value, list) and len(value) == 1 else value
    try:
        ds = sweep(experiment.name, chunk_size=args.chunk_size, progress=not args.no_progress,
                   **params)
    except (ValueError, TypeError) as error:
        print(f"lazyrich {command}: {error}", file=sys.stderr)
        return 2
    return experiment, args, ds


def _run(argv: Sequence[str]) -> int:
    outcome = _sweep_from_command_line("run", argv, "netCDF file to write (.nc)")
    if isinstance(outcome, int):
        return outcome
    _, args, ds = outcome
    save(ds, args.out)
    print(f"wrote {args.out}: {dict(ds.sizes)}, {ds.attrs['wall_seconds']:.1f} s")
    return 0


THEORIES = ("dmft", "kernel")


def _split_theory(argv: Sequence[str]) -> tuple[list[str], str | None]:
    """Remove `--theory NAME` from argv; returns (rest, name), name None if it is bad."""
    rest, theory = list(argv), "dmft"
    if "--theory" in rest:
        at = rest.index("--theory")
        theory = rest[at + 1] if at + 1 < len(rest) else ""
        del rest[at:at + 2]
    return rest, theory if theory in THEORIES else None


def _compare(argv: Sequence[str]) -> int:
    """Simulation against theory: the DMFT (default) or the lazy (kernel) limit, `grokking`."""
    # The command line is an application on top of both packages, so it may import dmft.
    import matplotlib.pyplot as plt

    from dmft.kernel import grokking_lazy_curves
    from lazyrich.views.plot import compare
    from lazyrich.views.theory import dmft_curves

    argv, theory_name = _split_theory(argv)
    if theory_name is None:
        print(f"lazyrich compare: --theory must be one of {THEORIES}", file=sys.stderr)
        return 2
    if argv[:1] != ["grokking"]:
        print("lazyrich compare: theory is available for: grokking", file=sys.stderr)
        return 2
    outcome = _sweep_from_command_line("compare", argv, "image file to write (.png, .pdf)")
    if isinstance(outcome, int):
        return outcome
    _, args, ds = outcome
    needed = ("D", "N", "P", "n_test", "eps", "lr_scale", "init_scale", "steps", "log_every")
    swept = sorted(set(needed) & set(ds.dims))
    kernel_ok = theory_name == "dmft" or ds.attrs.get("dynamics") == "network"
    if swept or not kernel_ok:
        print(f"lazyrich compare: the theory needs a single value of each of {swept}"
              + ("" if kernel_ok else " and dynamics='network'"), file=sys.stderr)
        return 2
    scalars = {k: ds.attrs[k] for k in needed}
    if theory_name == "dmft":
        theory = dmft_curves(ds, scalars)
        label = "the DMFT (N -> infinity)"
    else:
        seeds = ds["seed"].values if "seed" in ds.dims else [ds.attrs["seed"]]
        theory = grokking_lazy_curves(seed=seeds, **scalars)
        label = "the lazy-limit theory"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, var in zip(axes, ("train_loss", "test_loss"), strict=True):
        compare(theory, ds, var=var, ax=ax)
    fig.suptitle(f"grokking: simulation vs {label} (D={scalars['D']}, "
                 f"N={scalars['N']}, P={scalars['P']})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")
    return 0


def _plot(argv: Sequence[str]) -> int:
    from lazyrich.views.plot import learning_curves

    parser = argparse.ArgumentParser(prog="lazyrich plot",
                                     description="draw learning curves of a saved sweep")
    parser.add_argument("path", help="netCDF file written by `lazyrich run`")
    parser.add_argument("--out", required=True, help="image file to write (.png, .pdf)")
    parser.add_argument("--colour-by", default=None, help="sweep axis that sets the colour")
    args = parser.parse_args(argv)
    try:
        learning_curves(load(args.path), colour_by=args.colour_by, out=args.out)
    except ValueError as error:
        print(f"lazyrich plot: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0


def _demo(argv: Sequence[str]) -> int:
    from lazyrich.views.gallery import DEMO
    from lazyrich.views.plot import learning_curves

    parser = argparse.ArgumentParser(
        prog="lazyrich demo",
        description="alpha sweep of the grokking model at a reduced size (about a minute on "
                    "2 CPU cores); writes DIR/grokking.nc and DIR/grokking.png")
    parser.add_argument("--out-dir", default="demo", help="directory for the outputs")
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    started = time.perf_counter()
    ds = sweep("grokking", **DEMO)
    data_path = os.path.join(args.out_dir, "grokking.nc")
    figure_path = os.path.join(args.out_dir, "grokking.png")
    save(ds, data_path)
    learning_curves(ds, colour_by="alpha", out=figure_path)
    print(f"wrote {data_path} and {figure_path} in {time.perf_counter() - started:.0f} s")
    return 0


def _gallery(argv: Sequence[str]) -> int:
    from lazyrich.views.gallery import FIGURES, make_gallery

    parser = argparse.ArgumentParser(prog="lazyrich gallery",
                                     description="regenerate one PNG per experiment")
    parser.add_argument("--out", default="docs/figures", help="directory for the PNGs")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), default=None,
                        help="figures to make (default: all)")
    args = parser.parse_args(argv)
    for path in make_gallery(args.out, args.only):
        print(f"wrote {path}")
    return 0


def _experiments(argv: Sequence[str]) -> int:
    for experiment in registered().values():
        print(experiment.describe())
        print()
    return 0


COMMANDS = {"run": _run, "plot": _plot, "compare": _compare, "demo": _demo,
            "gallery": _gallery, "experiments": _experiments}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lazyrich` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: lazyrich {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
