"""`lazyrich phase grokking`: the grokking phase diagram, simulation beside the closed form.

    lazyrich phase grokking --alpha 0.25 1 4 --P_over_D 5 8 --seed 0 1 --D 40 \
        --out phase.nc --figure phase.png

Sweeps the grokking model over alpha x (P/D or eps) x seed through `method` (`mean_field`: the
gradient-flow ODEs of `dmft.mean_field` when that module is installed, the default then;
`infinite` / `network`: `lazyrich.sweep("grokking", dynamics=...)`), measures each run's half
times and delay (`lazyrich.metrics.grokking_times`, on the population test loss, floor 0:
half of the plateau), and stores them beside the closed form of `dmft.grokking_scaling` and
their ratio in a netCDF file; `--figure` draws it (`lazyrich.views.plot_phase`) from that file.
Every run shares one horizon, `--horizon` x the largest closed-form grokking time of the grid,
in `--steps` steps. Bad input (an axis with one value, an unknown flag) is refused before any
work.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Sequence

import numpy as np
import xarray as xr

from lazyrich.core.engine import sweep
from lazyrich.core.io import save
from lazyrich.measures.grokking_times import grokking_times
from lazyrich.views.cli_args import (
    NETCDF_SUFFIXES,
    OneLineParser,
    UsageError,
    check_output_file,
    image_suffixes,
)
from lazyrich.views.theory import MAX_DMFT_POINTS, MIN_DMFT_POINTS

METHODS = ("mean_field", "infinite", "network")
# The README / gallery phase diagram (`lazyrich gallery --only phase`, the README's command)
PHASE = {"alpha": [0.25, 0.5, 1.0, 2.0, 4.0], "P_over_D": [5.0, 8.0], "seed": [0, 1, 2],
         "D": 64, "method": "infinite", "steps": 8000, "log_every": 20}


def default_method() -> str:
    """`mean_field` when dmft.mean_field is installed, else `infinite`."""
    return "mean_field" if importlib.util.find_spec("dmft.mean_field") else "infinite"


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="lazyrich phase grokking", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["grokking"], help="the experiment (grokking)")
    parser.add_argument("--alpha", type=float, nargs="+", required=True,
                        help="output scales (at least 2)")
    parser.add_argument("--P_over_D", type=float, nargs="+", default=[5.0],
                        help="training points per input dimension (several: the second axis)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.02],
                        help="quadratic coefficient of the activation (several: the second "
                             "axis)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--D", type=int, default=40, help="input dimension")
    parser.add_argument("--N", type=int, default=500, help="hidden units (method network)")
    parser.add_argument("--method", choices=METHODS, default=default_method(),
                        help="mean_field (ODEs, the default where installed), infinite or "
                             "network (gradient descent through lazyrich.sweep)")
    parser.add_argument("--steps", type=int, default=2000, help="steps of every run")
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--horizon", type=float, default=3.0,
                        help="run length as a multiple of the largest closed-form grokking time")
    parser.add_argument("--dmft", action="store_true",
                        help="also solve the DMFT (dmft.grokking) at every point, at the seeds' "
                             "mean teacher scale: minutes per point on a CPU")
    parser.add_argument("--theory-points", type=int, default=MAX_DMFT_POINTS, metavar="N",
                        help=f"most time points of each DMFT grid (default {MAX_DMFT_POINTS}; "
                             f"a grid that ends before a curve's half drop gives NaN)")
    parser.add_argument("--out", required=True, help="netCDF file to write (.nc)")
    parser.add_argument("--figure", default=None, help="image of the phase diagram (optional)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _check(args, outputs: bool = True) -> str:
    """The second axis' name; UsageError for bad input, before any work."""
    if len(args.alpha) < 2:
        raise UsageError(f"--alpha needs at least 2 values for a phase diagram, got {args.alpha}")
    several = [name for name in ("P_over_D", "eps") if len(getattr(args, name)) > 1]
    if len(several) != 1:
        raise UsageError(f"give several values to exactly one of --P_over_D and --eps (the "
                         f"second axis), got several for {several or 'neither'}")
    if min(args.alpha) <= 0 or min(args.eps) <= 0:
        raise UsageError("--alpha and --eps must be > 0")
    if min(args.P_over_D) <= 1:
        raise UsageError(f"--P_over_D must be > 1 (more points than dimensions), got "
                         f"{args.P_over_D}")
    for name in ("D", "N", "steps", "log_every"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.steps % args.log_every:
        raise UsageError(f"--steps ({args.steps}) must be a multiple of --log_every "
                         f"({args.log_every})")
    if args.horizon <= 0:
        raise UsageError(f"--horizon must be > 0, got {args.horizon}")
    if args.theory_points < MIN_DMFT_POINTS:
        raise UsageError(f"--theory-points must be at least {MIN_DMFT_POINTS} (got "
                         f"{args.theory_points})")
    if args.method not in METHODS:
        raise UsageError(f"--method {args.method!r} is not one of {METHODS}")
    if outputs:
        check_output_file("--out", args.out, NETCDF_SUFFIXES)
        if args.figure is not None:
            check_output_file("--figure", args.figure, image_suffixes())
    return several[0]


def _simulate(args, P_over_D: float, lr_scale: float) -> xr.Dataset:
    params = {"alpha": list(args.alpha), "eps": args.eps if len(args.eps) > 1 else args.eps[0],
              "seed": list(args.seed), "D": args.D, "P": int(round(P_over_D * args.D)),
              "lr_scale": lr_scale, "steps": args.steps, "log_every": args.log_every,
              "n_test": 10}
    if args.method == "mean_field":
        from dmft.mean_field import sweep as mean_field_sweep
        return mean_field_sweep(**params)
    params.update(N=args.N if args.method == "network" else 1, dynamics=args.method,
                  progress=not args.no_progress)
    return sweep("grokking", **params)


def _dmft_times(args, P_over_D: float, lr_scale: float) -> xr.Dataset:
    """dmft_t_half_train / _test / dmft_delay over (alpha[, eps]) at one P/D."""
    from dmft.grokking_agreement import teacher_scales
    from lazyrich.views.theory import dmft_half_times

    P = int(round(P_over_D * args.D))
    scale = float(np.mean(teacher_scales(args.seed, args.D, P)))
    parts = []
    for eps in args.eps:
        scalars = {"steps": args.steps, "lr_scale": lr_scale, "D": args.D, "P": P, "eps": eps}
        times = dmft_half_times(scalars, args.alpha, scale, max_points=args.theory_points,
                                progress=not args.no_progress)
        parts.append(times.expand_dims(eps=[eps]) if len(args.eps) > 1 else times)
    times = xr.concat(parts, "eps") if len(parts) > 1 else parts[0]
    return times.rename({name: f"dmft_{name}" for name in times.data_vars})


def grokking_phase(alpha: Sequence[float], *, P_over_D: Sequence[float] = (5.0,),
                   eps: Sequence[float] = (0.02,), seed: Sequence[int] = (0,), D: int = 40,
                   N: int = 500, method: str | None = None, steps: int = 2000,
                   log_every: int = 10, horizon: float = 3.0, dmft: bool = False,
                   theory_points: int = MAX_DMFT_POINTS, progress: bool = True) -> xr.Dataset:
    """The phase-diagram Dataset of `lazyrich phase grokking` (same options as its flags).

    alpha needs >= 2 values and exactly one of P_over_D, eps several. Returns t_half_train,
    t_half_test, delay and plateau_test_loss on (alpha, P_over_D or eps, seed), the closed form
    theory_t_half_test / theory_t_half_train / theory_delay / theory_plateau_test_loss (S2,
    S7, S13, S14 of dmft/README.md), and `ratio` = seed-mean t_half_test over
    the closed form; with `dmft`, also dmft_t_half_train, dmft_t_half_test, dmft_delay (the
    DMFT at the seeds' mean teacher scale, `lazyrich.views.theory.dmft_half_times`) and
    dmft_ratio = seed-mean simulated t_half_test over the DMFT's; attrs: method, D, axis,
    lr_scale, horizon, steps, wall_seconds.
    """
    args = argparse.Namespace(
        alpha=list(alpha), P_over_D=list(P_over_D), eps=list(eps), seed=list(seed), D=D, N=N,
        method=method or default_method(), steps=steps, log_every=log_every, horizon=horizon,
        dmft=dmft, theory_points=theory_points, no_progress=not progress)
    return _phase_dataset(args, _check(args, outputs=False))


def _phase_dataset(args, axis: str) -> xr.Dataset:
    from dmft.grokking_scaling import grokking_time, plateau_test_loss, train_half_time

    grid = (np.array(args.alpha)[:, None, None], np.array(args.eps)[None, :, None],
            np.array(args.P_over_D)[None, None, :], args.D)
    theory = grokking_time(*grid)
    theory_train = train_half_time(*grid)
    horizon = args.horizon * float(np.max(theory))
    lr_scale = min(horizon / args.steps, args.D / 10)
    start = time.time()
    parts = []
    for P_over_D in args.P_over_D:
        ds = _simulate(args, P_over_D, lr_scale)
        times = grokking_times(ds, train="train_loss", test="test_loss_population", floor=0.0)
        times["plateau_test_loss"] = ds.test_loss_population.max("step")
        if args.dmft:
            times = times.merge(_dmft_times(args, P_over_D, lr_scale))
        parts.append(times.expand_dims(P_over_D=[P_over_D]))
    out = xr.concat(parts, "P_over_D")
    if "eps" not in out.dims:
        out = out.expand_dims(eps=args.eps)
    if args.dmft:
        out["dmft_ratio"] = out.t_half_test.mean("seed") / out.dmft_t_half_test
        out["dmft_ratio"].attrs["long_name"] = "simulated (seed mean) / DMFT grokking time"
    out["theory_t_half_test"] = (("alpha", "eps", "P_over_D"), theory)
    out["theory_t_half_train"] = (("alpha", "eps", "P_over_D"), theory_train)
    out["theory_delay"] = (("alpha", "eps", "P_over_D"), theory - theory_train)
    out["theory_plateau_test_loss"] = (("P_over_D",), plateau_test_loss(args.P_over_D))
    out["ratio"] = out.t_half_test.mean("seed") / out.theory_t_half_test
    out["ratio"].attrs["long_name"] = "simulated (seed mean) / closed-form grokking time"
    squeeze = "eps" if axis == "P_over_D" else "P_over_D"
    out = out.squeeze(squeeze)
    out.attrs.update(method=args.method, D=args.D, axis=axis, lr_scale=lr_scale,
                     horizon=horizon, steps=args.steps, wall_seconds=time.time() - start,
                     definition="half times of train_loss / test_loss_population, floor 0 "
                                "(lazyrich.metrics.grokking_times)")
    return out


def classification_phase(ds: xr.Dataset, scale: str) -> xr.Dataset:
    """Half times and delay of a classification sweep (digits, modular) along `scale`.

    The curves are the error rates 1 - accuracy (train and test), floor their last value; the
    result has t_half_train, t_half_test, delay (lazyrich.metrics.grokking_times, in steps)
    on the sweep's dims, and attrs `axis` = scale.
    """
    errors = xr.Dataset({"train_error": 1 - ds.train_accuracy, "test_error": 1 - ds.test_accuracy})
    out = grokking_times(errors, train="train_error", test="test_error")
    out.attrs.update(axis=scale, experiment=ds.attrs.get("experiment", ""),
                     definition="half times of the error rates 1 - accuracy, floor their last "
                                "value (lazyrich.metrics.grokking_times), in steps")
    return out


def _classification_command(argv: Sequence[str]) -> int:
    """`lazyrich phase digits|modular --SCALE v1 v2 ...`: empirical delay vs the scale."""
    from lazyrich.views.cli_sweep import parse_sweep

    def outputs(parser: OneLineParser) -> None:
        parser.add_argument("--out", required=True, help="netCDF file to write (.nc)")
        parser.add_argument("--figure", default=None, help="image of the delay vs scale")

    experiment, args, params = parse_sweep("phase", argv, outputs)
    if "test_accuracy" not in experiment.outputs:
        raise UsageError(f"lazyrich phase needs grokking or an experiment that logs "
                         f"train/test accuracy; {experiment.name!r} does not")
    axes = [name for name, value in params.items()
            if isinstance(value, list) and name != "seed"]
    if len(axes) != 1 or len(params[axes[0]]) < 2:
        raise UsageError(f"give exactly one scale axis with at least 2 values (e.g. "
                         f"--output_scale 1 3 10), besides --seed; got axes {axes}")
    check_output_file("--out", args.out, NETCDF_SUFFIXES)
    if args.figure is not None:
        check_output_file("--figure", args.figure, image_suffixes())
    ds = sweep(experiment.name, chunk_size=args.chunk_size, progress=not args.no_progress,
               **params)
    out = classification_phase(ds, axes[0])
    out.attrs["wall_seconds"] = ds.attrs.get("wall_seconds", float("nan"))
    save(out, args.out)
    written = [args.out]
    if args.figure is not None:
        from lazyrich.views.plot_phase import phase_diagram
        phase_diagram(args.out, out=args.figure)
        written.append(args.figure)
    print(f"wrote {' and '.join(written)}: {dict(out.sizes)}")
    return 0


def phase_command(argv: Sequence[str]) -> int:
    """`lazyrich phase grokking ...` (closed form beside simulation) or `lazyrich phase digits
    --output_scale ...` / `modular --scale ...` (empirical delay); writes netCDF (+ figure)."""
    if argv[:1] and argv[0] not in ("grokking", "-h", "--help"):
        return _classification_command(argv)
    args = _parser().parse_args(list(argv))
    ds = _phase_dataset(args, _check(args))
    save(ds, args.out)
    written = [args.out]
    if args.figure is not None:
        from lazyrich.views.plot_phase import phase_diagram
        phase_diagram(args.out, out=args.figure)
        written.append(args.figure)
    print(f"wrote {' and '.join(written)}: {dict(ds.sizes)}, {ds.attrs['wall_seconds']:.1f} s "
          f"({args.method})")
    return 0
