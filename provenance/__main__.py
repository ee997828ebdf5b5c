"""Command line: `python -m provenance query | power | demo`.

    python -m provenance query --loglik bob.npy --order order.npy [--reference ref.npy]
        [--statistic spearman|kendall|pearson] [--method asymptotic|exact|permutation]
        [--alternative greater|less|two-sided] [--json out.json]
    python -m provenance power --out power.png [--strengths 0 0.1 0.3] [--sizes 1000 10000]
    python -m provenance demo [demo options]

Input files (one value per training example):
  .npy   the array itself: (n,) or, for --loglik, (models, n).
  .npz   the array named by --loglik-key / --order-key / --reference-key; without one, the
         array called loglik / order / reference, or the only array in the file.
  .csv   a header row names the columns; the column named by the key (same defaults), or the
         only column; for --loglik without a key and no "loglik" column, every column is a model.
  .jsonl one JSON object per line; the field named by the key (same defaults), or the only field;
         a field holding a list gives one value per model.
Errors (unreadable or non-numeric files, bad shapes, NaN) print a message naming the argument
and exit with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

from provenance.command_line import OneLineParser, check_output_file

FORMATS = (".npy", ".npz", ".csv", ".jsonl")


class InputError(ValueError):
    """A file given on the command line cannot be used; the message names the argument."""


def _pick(argument: str, fields: list[str], key: str | None, default: str) -> str | None:
    """Which field of a multi-field file to read (None: all of them)."""
    if key is not None:
        if key not in fields:
            raise InputError(f"--{argument}: key {key!r} not found; the file has {fields}")
        return key
    if default in fields:
        return default
    if len(fields) == 1:
        return fields[0]
    if argument == "loglik":
        return None
    raise InputError(f"--{argument}: the file has fields {fields}; choose one with "
                     f"--{argument}-key")


def _numeric(argument: str, values, where: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"--{argument}: {where} holds non-numeric values") from None
    return array


def load_values(path: str | Path, argument: str, key: str | None = None
                ) -> tuple[np.ndarray, list[str] | None, str]:
    """Read one argument's values: (array (n,) or (models, n), model names or None, source)."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise InputError(f"--{argument}: {str(path)!r} has suffix {path.suffix!r}; allowed "
                         f"formats are {FORMATS}")
    if not path.is_file():
        raise InputError(f"--{argument}: file {str(path)!r} does not exist")
    try:
        if path.suffix == ".npy":
            return _numeric(argument, np.load(path, allow_pickle=False), str(path)), None, \
                str(path)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                name = _pick(argument, list(archive.files), key, argument)
                if name is None:
                    raise InputError(f"--{argument}: the file has arrays {archive.files}; "
                                     f"choose one with --{argument}-key")
                return _numeric(argument, archive[name], f"{path}[{name}]"), None, \
                    f"{path} array {name!r}"
        rows = _read_table(path, argument)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"--{argument}: cannot read {str(path)!r}: {error}") from None
    fields = list(rows[0])
    name = _pick(argument, fields, key, argument)
    chosen = fields if name is None else [name]
    columns = [_numeric(argument, [row[field] for row in rows], f"{path} field {field!r}")
               for field in chosen]
    if name is None:
        return np.stack(columns), chosen, f"{path} fields {chosen}"
    array = columns[0]
    return (array.T if array.ndim == 2 else array), None, f"{path} field {name!r}"


def _read_table(path: Path, argument: str) -> list[dict]:
    """Rows of a .csv (with header) or .jsonl file as dictionaries."""
    with path.open(newline="") as handle:
        if path.suffix == ".csv":
            rows = list(csv.DictReader(handle))
        else:
            rows = [json.loads(line) for line in handle if line.strip()]
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise InputError(f"--{argument}: {str(path)!r} has no rows of named values")
    missing = [i for i, row in enumerate(rows) if set(row) != set(rows[0])]
    if missing:
        raise InputError(f"--{argument}: {str(path)!r} row {missing[0] + 1} has fields "
                         f"{sorted(rows[missing[0]])}, not {sorted(rows[0])}")
    return rows


def _query(args: argparse.Namespace) -> int:
    from provenance.query import query_test

    check_output_file("--json", args.json)

    loglik, models, loglik_source = load_values(args.loglik, "loglik", args.loglik_key)
    order, _, order_source = load_values(args.order, "order", args.order_key)
    reference, reference_source = None, None
    if args.reference is not None:
        reference, _, reference_source = load_values(args.reference, "reference",
                                                     args.reference_key)
    result = query_test(loglik, order, reference, statistic=args.statistic, method=args.method,
                        alternative=args.alternative, models=models,
                        n_permutations=args.permutations, seed=args.seed)
    print(f"read loglik from {loglik_source}; order from {order_source}"
          + (f"; reference from {reference_source}" if reference_source else ""))
    print(result)
    if args.json is not None:
        record = result.to_dict()
        record["inputs"] = {"loglik": loglik_source, "order": order_source,
                            "reference": reference_source}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _power(args: argparse.Namespace) -> int:
    from matplotlib.figure import Figure

    from provenance.simulate import power_curve

    if Path(args.out).suffix.lower() != ".png":
        raise InputError(f"--out: {args.out!r} must end in .png")
    check_output_file("--out", args.out)
    curve = power_curve(args.strengths, args.sizes, n_draws=args.draws, alpha=args.alpha,
                        statistic=args.statistic, method=args.method,
                        use_reference=args.use_reference, seed=args.seed,
                        batch_size=args.batch_size, decay=args.decay, noise=args.noise,
                        reference_correlation=args.reference_correlation)
    figure = Figure(figsize=(9, 3.6), layout="constrained")
    power_axes, p_axes = figure.subplots(1, 2)
    for size in curve.n.values:
        point = curve.sel(n=size)
        power_axes.plot(curve.strength, point.power, marker="o", label=f"n = {size}")
        p_axes.plot(curve.strength, point.median_log10_pvalue, marker="o", label=f"n = {size}")
    power_axes.set(xlabel="memorisation strength (nats)", ylabel=f"power at alpha = {args.alpha}",
                   ylim=(-0.02, 1.02), title=f"{args.statistic}, {args.draws} draws")
    p_axes.axhline(math.log10(args.alpha), color="grey", linestyle="--", linewidth=1)
    p_axes.set(xlabel="memorisation strength (nats)", ylabel="median log10 p-value",
               title="query test on synthetic palimpsest data")
    power_axes.legend()
    figure.savefig(args.out, dpi=120)
    print(curve.power.to_pandas().to_string())
    print(f"wrote {args.out}")
    return 0


def _demo(demo_arguments: list[str]) -> int:
    """Hand every argument after `demo` to provenance.demo.main, imported only now."""
    import importlib.util

    if importlib.util.find_spec("provenance.demo") is None:
        raise InputError("the demo is not available: module provenance.demo is not installed "
                         "in this checkout")
    from provenance import demo

    return demo.main(demo_arguments) or 0


def _parser() -> argparse.ArgumentParser:
    from provenance.query import STATISTICS
    from provenance.stats import ALTERNATIVES, METHODS

    parser = OneLineParser(prog="python -m provenance", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    query = commands.add_parser("query", help="test log-likelihoods against training order",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, required in (("loglik", True), ("order", True), ("reference", False)):
        query.add_argument(f"--{name}", required=required, metavar="FILE")
        flags = [f"--{name}-key"] + (["--key"] if name == "loglik" else [])
        query.add_argument(*flags, dest=f"{name}_key", metavar="KEY",
                           help=f"array / column / field holding {name} (default: {name})")
    query.add_argument("--statistic", choices=STATISTICS, default="spearman")
    query.add_argument("--method", choices=METHODS, default="asymptotic")
    query.add_argument("--alternative", choices=ALTERNATIVES, default="greater")
    query.add_argument("--permutations", type=int, default=10_000)
    query.add_argument("--seed", type=int, default=0)
    query.add_argument("--json", metavar="OUT", help="also write the result as JSON")
    query.set_defaults(run=_query)
    power = commands.add_parser("power", help="power curve PNG from synthetic data")
    power.add_argument("--out", required=True, metavar="PNG")
    power.add_argument("--strengths", type=float, nargs="+", default=[0, 0.05, 0.1, 0.2, 0.4])
    power.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    power.add_argument("--draws", type=int, default=100)
    power.add_argument("--alpha", type=float, default=0.05)
    power.add_argument("--statistic", choices=STATISTICS, default="spearman")
    power.add_argument("--method", choices=METHODS, default="asymptotic")
    power.add_argument("--batch-size", type=int, default=1)
    power.add_argument("--decay", type=float, default=0.25)
    power.add_argument("--noise", type=float, default=1.0)
    power.add_argument("--reference-correlation", type=float, default=0.0)
    power.add_argument("--use-reference", action="store_true")
    power.add_argument("--seed", type=int, default=0)
    power.set_defaults(run=_power)
    commands.add_parser("demo", help="end-to-end demonstration (provenance.demo); its options "
                        "follow `demo`", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["demo"]:
            return _demo(argv[1:])
        args = _parser().parse_args(argv)
        return args.run(args)
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
