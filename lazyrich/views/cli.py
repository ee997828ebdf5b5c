"""The `lazyrich` command line: run a sweep to netCDF or a resumable store, plot a result, lay
theory over simulation, run the demo, regenerate the gallery.

    lazyrich run grokking --alpha 0.125 1 8 --seed 0 1 --steps 60000 --out run.nc
    lazyrich run grokking --alpha 0.125 1 8 --seed 0 1 --store runs.zarr  # resumable
    lazyrich plot run.nc --out fig.png
    lazyrich compare grokking --alpha 1 8 64 --seed 0 1 --out fig.png   # DMFT over simulation
    lazyrich compare grokking --theory kernel --alpha 1 8 --out fig.png  # lazy limit instead
    lazyrich demo                      # what `make demo` runs
    lazyrich gallery --out docs/figures/   # one PNG per experiment
    lazyrich experiments               # every experiment with its parameters

In `run`, a parameter given several values becomes a sweep axis, in command-line order; one value
fixes it for every run. Every command checks its output paths before any work, and bad input
of any kind (including a library's ValueError / TypeError, e.g. a refused memory estimate) is one
line on stderr and exit status 2; set LAZYRICH_TRACEBACK=1 to see the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from lazyrich.core.engine import sweep
from lazyrich.core.io import load, save
from lazyrich.views.cli_args import (
    NETCDF_SUFFIXES,
    OneLineParser,
    UsageError,
    check_input_file,
    check_output_file,
    check_output_folder,
    image_suffixes,
    one_line,
)
from lazyrich.views.cli_compare import compare_command
from lazyrich.views.cli_info import info_command
from lazyrich.views.cli_phase import phase_command
from lazyrich.views.cli_stages import Stages
from lazyrich.views.cli_sweep import parse_sweep, runs_in


def _run(argv: Sequence[str]) -> int:
    def outputs(parser: OneLineParser) -> None:
        parser.add_argument("--out", help="netCDF file to write (.nc); optional with --store")
        parser.add_argument("--store", help="folder of a zarr store: every finished chunk is "
                            "written at once, and the same command resumes after a crash "
                            "(as sweep(store=...))")
        parser.add_argument("--overwrite", action="store_true",
                            help="with --store: replace a store made by another configuration")

    experiment, args, params = parse_sweep("run", argv, outputs)
    if args.out is None and args.store is None:
        raise UsageError("give --out FILE.nc, --store FOLDER, or both")
    if args.overwrite and args.store is None:
        raise UsageError("--overwrite applies to --store only; give --store FOLDER")
    if args.out is not None:
        check_output_file("--out", args.out, NETCDF_SUFFIXES)
    if args.store is not None:
        check_output_folder("--store", args.store)
    ds = sweep(experiment.name, chunk_size=args.chunk_size, progress=not args.no_progress,
               store=args.store, overwrite=args.overwrite, **params)
    written = [path for path in (args.store, args.out) if path is not None]
    if args.out is not None:
        save(ds, args.out)
    print(f"wrote {' and '.join(written)}: {dict(ds.sizes)}, {ds.attrs['wall_seconds']:.1f} s")
    return 0


def _read_result(path: str):
    """A netCDF file (`run --out`) or a store folder (`run --store`) as a Dataset."""
    from lazyrich.core.labels import open_store

    if os.path.isdir(path):
        return open_store(path)
    try:
        return load(path)
    except OSError as error:
        raise UsageError(f"path {path!r} is not a netCDF file lazyrich can read ({error})") \
            from None


def _plot(argv: Sequence[str]) -> int:
    from lazyrich.views.plot import learning_curves

    parser = OneLineParser(prog="lazyrich plot", description="draw the learning curves (and "
                           "accuracy and alignment where logged) of a saved sweep")
    parser.add_argument("path", help="netCDF file written by `lazyrich run --out`, or a store "
                        "folder written by `lazyrich run --store`")
    parser.add_argument("--out", required=True, help="image file to write (.png, .pdf, .svg, "
                        "...)")
    parser.add_argument("--colour-by", default=None, help="sweep axis that sets the colour")
    args = parser.parse_args(argv)
    check_input_file("path", args.path)
    check_output_file("--out", args.out, image_suffixes())
    learning_curves(_read_result(args.path), colour_by=args.colour_by, out=args.out)
    print(f"wrote {args.out}")
    return 0


def _demo(argv: Sequence[str]) -> int:
    from lazyrich.views.gallery import DEMO
    from lazyrich.views.plot import learning_curves

    parser = OneLineParser(
        prog="lazyrich demo",
        description="alpha sweep of the grokking model at a reduced size (about a minute on "
                    "2 CPU cores); writes DIR/grokking.nc and DIR/grokking.png")
    parser.add_argument("--out-dir", default="demo", help="folder for the outputs (created if "
                        "its parent exists)")
    args = parser.parse_args(argv)
    check_output_folder("--out-dir", args.out_dir)
    stages = Stages("lazyrich demo", 3)
    with stages.stage(f"simulation: {runs_in(DEMO)} runs of grokking, {DEMO['steps']:,} steps "
                      f"(about a minute on 2 CPU cores)"):
        ds = sweep("grokking", **DEMO)
    os.makedirs(args.out_dir, exist_ok=True)
    data_path = os.path.join(args.out_dir, "grokking.nc")
    figure_path = os.path.join(args.out_dir, "grokking.png")
    with stages.stage(f"save {data_path}"):
        save(ds, data_path)
    with stages.stage(f"figure {figure_path}"):
        learning_curves(ds, colour_by="alpha", out=figure_path)
    stages.wrote([data_path, figure_path])
    return 0


def _gallery(argv: Sequence[str]) -> int:
    from lazyrich.views.gallery import FIGURES, make_gallery

    parser = OneLineParser(prog="lazyrich gallery", description="regenerate one PNG per "
                           "experiment (about 5 minutes on 2 CPU cores for all of them)")
    parser.add_argument("--out", default="docs/figures", help="folder for the PNGs (created if "
                        "its parent exists)")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), default=None,
                        help="figures to make (default: all)")
    args = parser.parse_args(argv)
    check_output_folder("--out", args.out)
    names = args.only or list(FIGURES)
    make_gallery(args.out, names, stages=Stages("lazyrich gallery", len(names)))
    return 0


def _experiments(argv: Sequence[str]) -> int:
    from lazyrich.experiments.base import registered

    OneLineParser(prog="lazyrich experiments",
                  description="list every experiment with its parameters").parse_args(argv)
    for experiment in registered().values():
        print(experiment.describe())
        print()
    return 0


class Command(NamedTuple):
    run: Callable[[Sequence[str]], int]
    summary: str


COMMANDS = {
    "run": Command(_run, "run a sweep of an experiment; write a netCDF file (--out) and/or a "
                         "resumable store (--store)"),
    "plot": Command(_plot, "draw learning curves (and accuracy, alignment) of a saved sweep"),
    "compare": Command(compare_command, "grokking simulation against its theory (DMFT or the "
                                        "lazy limit) in one figure"),
    "phase": Command(phase_command, "grokking phase diagram: grokking time and delay vs alpha "
                                    "and P/D or eps, simulation beside the closed form"),
    "demo": Command(_demo, "the `make demo` alpha sweep: DIR/grokking.nc and DIR/grokking.png "
                           "(about a minute)"),
    "gallery": Command(_gallery, "regenerate the README's figures, one PNG per experiment"),
    "experiments": Command(_experiments, "list every experiment with its parameters"),
    "info": Command(info_command, "JAX version, backend, devices and their free memory, float64 "
                                  "and matmul precision (`--json` for a machine-readable copy)"),
}


def overview() -> str:
    """`lazyrich --help`: the commands, one line each."""
    width = max(map(len, COMMANDS))
    lines = ["usage: lazyrich COMMAND [ARGUMENTS ...]   (`lazyrich COMMAND --help` for its "
             "options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lazyrich` console script; returns the exit status (0 done, 2 bad
    input, refused before any work where it could be checked up front)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(overview())
        return 0
    if not argv:
        print(overview(), file=sys.stderr)
        return 2
    if argv[0] not in COMMANDS:
        print(f"lazyrich: unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)} "
              f"(`lazyrich --help` describes them)", file=sys.stderr)
        return 2
    try:
        return COMMANDS[argv[0]].run(argv[1:])
    except (ValueError, TypeError) as error:  # UsageError, library refusals, MemoryEstimateError
        if os.environ.get("LAZYRICH_TRACEBACK"):
            raise
        print(f"lazyrich {argv[0]}: {one_line(error)}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # `--help` of a subcommand
        return stop.code if isinstance(stop.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
