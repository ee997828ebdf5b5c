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

METHODS = ("mean_field", "infinite", "network")


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
    parser.add_argument("--out", required=True, help="netCDF file to write (.nc)")
    parser.add_argument("--figure", default=None, help="image of the phase diagram (optional)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _check(args) -> str:
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


def phase_dataset(args) -> xr.Dataset:
    """Run the sweep and return half times, delay, closed form and ratio (see module doc)."""
    from dmft.grokking_scaling import grokking_time, plateau_test_loss

    axis = _check(args)
    theory = grokking_time(np.array(args.alpha)[:, None, None], np.array(args.eps)[None, :, None],
                           np.array(args.P_over_D)[None, None, :], args.D)
    horizon = args.horizon * float(np.max(theory))
    lr_scale = min(horizon / args.steps, args.D / 10)
    start = time.time()
    parts = []
    for P_over_D in args.P_over_D:
        ds = _simulate(args, P_over_D, lr_scale)
        times = grokking_times(ds, train="train_loss", test="test_loss_population", floor=0.0)
        times["plateau_test_loss"] = ds.test_loss_population.max("step")
        parts.append(times.expand_dims(P_over_D=[P_over_D]))
    out = xr.concat(parts, "P_over_D")
    if "eps" not in out.dims:
        out = out.expand_dims(eps=args.eps)
    out["theory_t_half_test"] = (("alpha", "eps", "P_over_D"), theory)
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


def phase_command(argv: Sequence[str]) -> int:
    """`lazyrich phase grokking ...`: write the phase-diagram Dataset (and its figure)."""
    args = _parser().parse_args(list(argv))
    _check(args)
    ds = phase_dataset(args)
    save(ds, args.out)
    written = [args.out]
    if args.figure is not None:
        from lazyrich.views.plot_phase import phase_diagram
        phase_diagram(args.out, out=args.figure)
        written.append(args.figure)
    print(f"wrote {' and '.join(written)}: {dict(ds.sizes)}, {ds.attrs['wall_seconds']:.1f} s "
          f"({args.method})")
    return 0
