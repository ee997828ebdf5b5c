"""Argument checks of the grokking DMFT's `solve` (`dmft/grokking.py`): every value validated
and named in the error, and the time grid (t_max and dt, or an explicit `times`) resolved.
"""

from __future__ import annotations

import numpy as np

from dmft import checks
from dmft.checkpoint import check_path
from dmft.grokking_cost import SCHEMES, default_dt, stability_limit_dt
from lazyrich.core.checks import check_positive_integer, check_seed

RESPONSE_SAMPLING = ("stratified", "first")
DEFAULT_T_MAX = 10_000.0
DTYPES = ("float64", "float32")
# float32 resolves relative changes down to ~1e-7: a smaller tol may never be reached
FLOAT32_MIN_TOL = 1e-6



def check_seeds(seed) -> list[int] | int:
    """`solve`'s `seed`: an int (one Monte Carlo draw) or a non-empty sequence of distinct ints
    (one draw each, solved together), every one in [0, 2**32)."""
    if isinstance(seed, (list, tuple, np.ndarray)):
        values = seed.ravel().tolist() if isinstance(seed, np.ndarray) else list(seed)
        seeds = [check_seed(value, f"seed[{i}]") for i, value in enumerate(values)]
        if not seeds or len(set(seeds)) < len(seeds):
            raise ValueError(f"seed={seed!r} must be an int or a non-empty sequence of distinct "
                             f"ints (one Monte Carlo draw each)")
        return seeds
    return check_seed(seed)


def check_solve_arguments(args: dict) -> dict:
    """Validated copies of `dmft.grokking.solve`'s arguments (its locals(); see its docstring
    for what is allowed), with the time grid resolved: "times" (n,), "dt" (its largest step)
    and "t_max"."""
    out = {"alpha": checks.values("alpha", args["alpha"]),
           "eps": checks.values("eps", args["eps"], inclusive=True),
           "target_scale": checks.values("target_scale", args["target_scale"]),
           "P_over_D": checks.values("P_over_D", args["P_over_D"]),
           "lr_scale": checks.number("lr_scale", args["lr_scale"]),
           "t_max": (DEFAULT_T_MAX if args["t_max"] is None
                     else checks.number("t_max", args["t_max"])),
           "damping": checks.number("damping", args["damping"], maximum=1.0),
           "tol": checks.number("tol", args["tol"], inclusive=True)}
    for name, low in (("D", 2), ("n_samples", 8), ("n_response", 1), ("max_iter", 1),
                      ("bulk_rank", 1), ("anderson", 0)):
        check_positive_integer(name, args[name], minimum=low)
        out[name] = int(args[name])
    out["seed"] = check_seeds(args["seed"])
    out["checkpoint"] = check_path(args["checkpoint"])
    if args["response_sampling"] not in RESPONSE_SAMPLING:
        raise ValueError(f"response_sampling must be one of {RESPONSE_SAMPLING}; got "
                         f"{args['response_sampling']!r}")
    out["response_sampling"] = args["response_sampling"]
    if args["dtype"] not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}; got {args['dtype']!r}")
    out["dtype"] = args["dtype"]
    if out["dtype"] == "float32" and out["tol"] < FLOAT32_MIN_TOL:
        raise ValueError(f"tol={out['tol']!r} is below what dtype='float32' resolves; use "
                         f"tol >= {FLOAT32_MIN_TOL:g} or dtype='float64'")
    if out["n_response"] > out["n_samples"]:
        raise ValueError(f"n_response={out['n_response']} must not exceed "
                         f"n_samples={out['n_samples']}")
    if args["scheme"] not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}; got {args['scheme']!r}")
    out["scheme"] = args["scheme"]
    limit = stability_limit_dt(out["D"], out["P_over_D"])
    if args["times"] is not None:
        return _check_times(out, args, limit)
    if args["dt"] is None:
        out["dt"] = default_dt(out["t_max"], out["D"], out["P_over_D"])
    else:
        out["dt"] = checks.number("dt", args["dt"])
    if out["t_max"] < out["dt"]:
        raise ValueError(f"t_max={out['t_max']!r} must be at least dt={out['dt']!r}")
    out["times"] = np.arange(int(round(out["t_max"] / out["dt"])) + 1) * out["dt"]
    if out["dt"] >= limit and out["scheme"] == "explicit":
        raise ValueError(f"dt={out['dt']!r} is beyond the explicit scheme's stability limit "
                         f"dt < {limit:.4g} = D / (1 + P_over_D^-1/2)^2 for D={out['D']}, "
                         f"P_over_D={out['P_over_D'].min():g}; leave dt=None for "
                         f"{default_dt(out['t_max'], out['D'], out['P_over_D']):.4g}, or "
                         f"scheme='implicit' (stable at any step)")
    return out


def _check_times(out: dict, args: dict, limit: float) -> dict:
    """`out` with the grid `times` (validated: 1-d, finite, from 0, increasing) and dt = its
    largest step; t_max and dt must then be None (times sets both)."""
    for name in ("dt", "t_max"):
        if args[name] is not None:
            raise ValueError(f"give either {name}={args[name]!r} or times=, not both (times "
                             f"sets the horizon and the steps)")
    times = checks.finite_array("times", args["times"], ndim=1)
    if times.size < 2 or times[0] != 0 or not np.all(np.diff(times) > 0):
        raise ValueError(f"times must start at 0 and increase strictly, with at least 2 "
                         f"points; got {times.size} point(s) from {times[:3].tolist()}")
    out["times"], out["t_max"] = times, float(times[-1])
    out["dt"] = float(np.max(np.diff(times)))
    if out["dt"] >= limit and out["scheme"] == "explicit":
        raise ValueError(f"times has a step of {out['dt']:.4g}, beyond the explicit scheme's "
                         f"stability limit {limit:.4g} = D / (1 + P_over_D^-1/2)^2; use "
                         f"scheme='implicit'")
    return out
