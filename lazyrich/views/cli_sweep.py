"""`EXPERIMENT --PARAM VALUE ...` on the command line -> the keyword arguments of `sweep`.

Shared by `lazyrich run` and `lazyrich compare`: every experiment parameter becomes a flag
(several values for a batched or static parameter make a sweep axis, in command-line order),
values are converted by the parameter's kind, and a flag given twice is refused.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lazyrich.experiments.base import Experiment, Parameter, get_experiment, registered
from lazyrich.views.cli_args import OneLineParser, UsageError


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


def _usage(command: str) -> str:
    return (f"lazyrich {command} EXPERIMENT [--PARAM VALUE ...]; experiments: "
            f"{', '.join(sorted(registered()))} (`lazyrich {command} EXPERIMENT --help` lists "
            f"its parameters)")


def parse_sweep(command: str, argv: Sequence[str],
                add_outputs: Callable[[OneLineParser], None]
                ) -> tuple[Experiment, argparse.Namespace, dict[str, Any]]:
    """Parse `EXPERIMENT --PARAM VALUE... [output flags]`.

    Returns (experiment, parsed arguments, sweep keyword arguments in command-line order); raises
    UsageError / ValueError (unknown experiment) on bad input.
    """
    if argv[:1] in (["-h"], ["--help"]):
        print(f"usage: {_usage(command)}")
        raise SystemExit(0)
    if not argv or argv[0].startswith("-"):
        raise UsageError(f"give the experiment first: {_usage(command)}")
    experiment = get_experiment(argv[0])
    parser = OneLineParser(prog=f"lazyrich {command} {experiment.name}",
                           description=experiment.doc)
    add_outputs(parser)
    parser.add_argument("--chunk-size", type=int, default=None, help="runs computed at once")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for name, spec in experiment.parameters.items():
        parser.add_argument(f"--{name}", type=_converter(name, spec),
                            nargs="+" if spec.sweepable else None,
                            help=f"{spec.doc} ({spec.allowed()}; default {spec.default!r})")
    args = parser.parse_args(argv[1:])
    given = [token.split("=", 1)[0][2:] for token in argv[1:] if token.startswith("--")]
    params = {}
    for name in sorted(experiment.parameters, key=lambda n: given.index(n) if n in given else 0):
        value = getattr(args, name)
        if value is not None:
            params[name] = value[0] if isinstance(value, list) and len(value) == 1 else value
    return experiment, args, params


def runs_in(params: Mapping[str, Any]) -> int:
    """Number of runs of a sweep: the product of its axes' lengths."""
    return math.prod(len(v) for v in params.values() if isinstance(v, list | tuple | range))
