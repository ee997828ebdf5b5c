"""`lazyrich compare`: a grokking sweep against its theory in one figure.

The theory is the DMFT (N -> infinity, `dmft.grokking`, default) or the lazy limit (kernel
gradient descent with each run's initial NTK, `dmft.kernel`). Both need one value of every size
and schedule parameter, so a sweep over any of them is refused before the simulation starts, as
are a bad output path and `--theory kernel` without `dynamics=network`. The command reports its
three stages (simulation, theory, figure) as they start and end with the file it wrote.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from lazyrich.core.engine import sweep
from lazyrich.views.cli_args import OneLineParser, UsageError, check_output_file, image_suffixes
from lazyrich.views.cli_stages import Stages
from lazyrich.views.cli_sweep import parse_sweep, runs_in
from lazyrich.views.theory import DMFT_SAMPLES, MAX_DMFT_POINTS, MIN_DMFT_POINTS

MAX_THEORY_DRAWS = 8   # each draw holds its own M x M mixing and multiplies the theory's cost

THEORIES = {"dmft": "the DMFT (N -> infinity)", "kernel": "the lazy-limit theory"}
EXPERIMENTS_WITH_THEORY = ("grokking",)
# The theory is solved for one configuration: these take one value each.
SINGLE_VALUED = ("D", "N", "P", "n_test", "eps", "lr_scale", "init_scale", "steps", "log_every")


def compare_command(argv: Sequence[str]) -> int:
    """Run `lazyrich compare ARGS`; returns the exit status (bad input raises)."""
    def outputs(parser: OneLineParser) -> None:
        parser.add_argument("--out", required=True, help="image file to write (.png, .pdf, "
                            ".svg, ...)")
        parser.add_argument("--theory", choices=list(THEORIES), default="dmft",
                            help="dmft: the N -> infinity DMFT (default); kernel: the lazy "
                                 "limit with each run's initial NTK (needs --dynamics network)")
        parser.add_argument("--theory-points", type=int, default=MAX_DMFT_POINTS,
                            metavar="N",
                            help=f"most time points of the DMFT's grid (default "
                                 f"{MAX_DMFT_POINTS}); its cost grows as N^3: past N the "
                                 f"theory takes a non-uniform grid with implicit steps, and "
                                 f"if even that does not fit it stops early and says where")
        parser.add_argument("--theory-samples", type=int, default=DMFT_SAMPLES, metavar="M",
                            help=f"Monte Carlo sample paths of the DMFT (default "
                                 f"{DMFT_SAMPLES}); its error falls like 1 / sqrt(M)")
        parser.add_argument("--keep", metavar="DIR", default=None,
                            help="keep the simulation (a sweep store) and the DMFT solves "
                                 "(checkpoints) in DIR, created if missing: the same command "
                                 "again, after a kill, resumes where it was")
        parser.add_argument("--theory-draws", type=int, default=1, metavar="K",
                            help="Monte Carlo draws of the DMFT (seeds 0..K-1, solved "
                                 "together; default 1): the curves drawn are their mean, and "
                                 "a warning says when their grokking times disagree by more "
                                 "than 5%% (K times the theory's cost)")

    if argv and not argv[0].startswith("-") and argv[0] not in EXPERIMENTS_WITH_THEORY:
        raise UsageError(f"experiment {argv[0]!r} has no theory to compare with; theory is "
                         f"available for: {', '.join(EXPERIMENTS_WITH_THEORY)}")
    experiment, args, params = parse_sweep("compare", argv, outputs)
    check_output_file("--out", args.out, image_suffixes())
    if args.theory_points < MIN_DMFT_POINTS:
        raise UsageError(f"--theory-points must be at least {MIN_DMFT_POINTS} (got "
                         f"{args.theory_points})")
    if args.theory_samples < 2:
        raise UsageError(f"--theory-samples must be at least 2 (got {args.theory_samples})")
    if not 1 <= args.theory_draws <= MAX_THEORY_DRAWS:
        raise UsageError(f"--theory-draws must be between 1 and {MAX_THEORY_DRAWS} (got "
                         f"{args.theory_draws})")
    if args.theory_draws > 1 and args.theory != "dmft":
        raise UsageError(f"--theory-draws {args.theory_draws} needs --theory dmft: the "
                         f"{args.theory} theory has no Monte Carlo draws")
    swept = [name for name in SINGLE_VALUED if isinstance(params.get(name), list)]
    if swept:
        raise UsageError(f"the theory is solved for one configuration: give one value each for "
                         f"{', '.join('--' + name for name in swept)} (got several)")
    dynamics = params.get("dynamics", experiment.parameters["dynamics"].default)
    if args.theory == "kernel" and dynamics not in ("network", "auto"):
        raise UsageError(f"--theory kernel needs dynamics='network' (got --dynamics "
                         f"{dynamics}): the lazy limit uses the network's initial NTK")
    keep = _keep_folder(args.keep)
    stages = Stages("lazyrich compare", 3)
    with stages.stage(f"simulation: {runs_in(params)} run(s) of grokking"):
        kept = {} if keep is None else {"store": keep / _store_name(params)}
        ds = sweep(experiment.name, chunk_size=args.chunk_size, progress=not args.no_progress,
                   **params, **kept)
    scalars = {name: ds.attrs[name] for name in SINGLE_VALUED}
    with stages.stage(f"theory: {THEORIES[args.theory]}"):
        theory = _theory(args.theory, ds, scalars, progress=not args.no_progress,
                         max_points=args.theory_points, n_samples=args.theory_samples,
                         draws=args.theory_draws, keep=keep)
    with stages.stage(f"figure {args.out}"):
        _draw(theory, ds, scalars, THEORIES[args.theory], args.out)
    stages.wrote([args.out])
    return 0


def _keep_folder(keep: str | None) -> pathlib.Path | None:
    """--keep's folder, created if missing; refused (naming --keep) if it cannot be one."""
    if keep is None:
        return None
    folder = pathlib.Path(keep)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--keep {keep!r} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--keep {keep!r}: cannot make the folder ({error})") from None
    return folder


def _store_name(params: dict) -> str:
    """The simulation store's file name in --keep's folder, after the sweep's parameters."""
    # the command line is an application on top of both packages: it may import dmft
    from dmft.checkpoint import short_name

    return f"simulation_{short_name(sorted(params.items()))}.zarr"


def _theory(name: str, ds, scalars: dict, progress: bool, max_points: int, n_samples: int,
            draws: int = 1, keep: pathlib.Path | None = None):
    # The command line is an application on top of both packages, so it may import dmft.
    if name == "dmft":
        from lazyrich.views.theory import dmft_curves

        return dmft_curves(ds, scalars, max_points=max_points, n_samples=n_samples,
                           progress=progress, draws=draws, keep=keep)
    from dmft.kernel import grokking_lazy_curves

    seeds = ds["seed"].values if "seed" in ds.dims else [ds.attrs["seed"]]
    return grokking_lazy_curves(seed=seeds, **scalars)


def _draw(theory, ds, scalars: dict, label: str, out: str) -> None:
    import matplotlib.pyplot as plt

    from lazyrich.views.plot import compare

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, var in zip(axes, ("train_loss", "test_loss"), strict=True):
        compare(theory, ds, var=var, ax=ax)
    fig.suptitle(f"grokking: simulation vs {label} (D={scalars['D']}, "
                 f"N={scalars['N']}, P={scalars['P']})")
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    plt.close(fig)
