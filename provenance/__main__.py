"""Command line: `python -m provenance query | score | power | demo`.

    python -m provenance query --loglik bob.npy --order order.npy [--reference ref.npy]
        [--statistic spearman|kendall|pearson] [--method asymptotic|exact|permutation]
        [--alternative greater|less|two-sided] [--json out.json]
    python -m provenance query --loglik losses_hf --field loss --per-token --tokens 32: --loss
        --order-field index --reference reference_hf
    python -m provenance score --model alice.npz --documents docs.npy --out scores.npz
    python -m provenance power --out power.png [--strengths 0 0.1 0.3] [--sizes 1000 10000]
    python -m provenance demo [demo options]

Input files: .npy, .npz, .csv (header row), .jsonl (one object per line), .parquet, or a folder
written by `datasets.Dataset.save_to_disk`; `provenance.load_likelihoods` reads them (see its
docstring). A field holding one number per row is one value per document; a field holding a
list per row must be declared: --per-token (per-token values of the document, reduced by
--reduce over the window --tokens) or --per-model (one value per model). A 2-D .npy / .npz array
is (models, n) unless --per-token. The reference file is read with the same flags and must list
the same documents in the same rows (checked against --order-field when it has that field too).
Errors (unreadable, ambiguous or non-numeric files, bad shapes, NaN) print a message naming the
argument, the file and the field, and exit with status 2 before anything is written.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from provenance.command_line import OneLineParser, check_output_file
from provenance.likelihoods import REDUCTIONS, Likelihoods


class InputError(ValueError):
    """A file given on the command line cannot be used; the message names the argument."""


def _reading(args: argparse.Namespace) -> dict:
    """load_likelihoods' reading options from the query command's flags."""
    per_token = True if args.per_token else False if args.per_model else None
    return {"per_token": per_token, "reduce": args.reduce, "tokens": args.tokens,
            "loss": args.loss}


def read_values(path: str, argument: str, field: str | None,
                preferred: tuple[str | None, ...], **options) -> Likelihoods:
    """One argument's file through load_likelihoods, errors prefixed with `--argument`.

    Without `field`: the first of `preferred` the file has; else its only field (besides the
    order and token-count fields); for --loglik, every field (one model each) when none is
    preferred and several are left.
    """
    from provenance.likelihoods import check_options, read_likelihoods
    from provenance.tables import open_table

    split = options.pop("split", None)
    try:
        options = check_options(**options)
        table = open_table(path, split)
        if argument == "reference" and options["order"] not in table.fields:
            options["order"] = None  # checked against --loglik's order only when present
        if field is None:
            others = [name for name in table.fields
                      if name not in (options.get("order"), options.get("n_tokens"))]
            present = [name for name in preferred if name in others]
            field = present[0] if present else others if (
                argument == "loglik" and len(others) > 1) else None
        return read_likelihoods(table, field=field, **options)
    except ValueError as error:
        raise InputError(f"--{argument}: {error}") from None


def _query(args: argparse.Namespace) -> int:
    from provenance.query import query_test

    check_output_file("--json", args.json)
    if (args.order is None) == (args.order_field is None):
        raise InputError("give the training order either as a file (--order FILE) or as a "
                         "field of the --loglik file (--order-field NAME), not both or neither")
    reading = _reading(args)
    bob = read_values(args.loglik, "loglik", args.field, ("loglik",), order=args.order_field,
                      n_tokens=args.n_tokens, split=args.split, **reading)
    order, order_source = bob.order, f"{args.loglik} field {args.order_field!r}"
    if args.order is not None:
        read = read_values(args.order, "order", args.order_key, ("order",), split=args.split)
        order, order_source = read.loglik, read.source
    _check_lengths("order", order, order_source, bob)
    reference = None
    if args.reference is not None:
        reference = read_values(args.reference, "reference", args.reference_key,
                                (args.field, "reference", "loglik"), split=args.split,
                                order=args.order_field, **reading)
        _check_lengths("reference", reference.loglik, reference.source, bob)
        if reference.order is not None and not np.array_equal(reference.order, order):
            raise InputError(f"--reference: its field {args.order_field!r} lists the documents "
                             f"in another order than --loglik's; give both files the same rows")
    result = query_test(bob.loglik, order, None if reference is None else reference.loglik,
                        statistic=args.statistic, method=args.method,
                        alternative=args.alternative, models=bob.models, n_tokens=bob.n_tokens,
                        n_permutations=args.permutations, seed=args.seed)
    print(f"read loglik from {bob.source}; order from {order_source}"
          + (f"; reference from {reference.source}" if reference else ""))
    print(result)
    if args.json is not None:
        record = result.to_dict()
        record["inputs"] = {"loglik": bob.source, "order": order_source,
                            "reference": reference.source if reference else None}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _check_lengths(name: str, values: np.ndarray, source: str, bob: Likelihoods) -> None:
    """Refuse files of different lengths, naming both (and the flag when rows look like
    documents of per-token values)."""
    n, m = bob.loglik.shape[-1], np.shape(values)[-1]
    if n == m:
        return
    hint = ""
    if bob.loglik.ndim == 2 and bob.loglik.shape[0] == m and bob.token_counts is None:
        hint = (f"; --loglik was read as {bob.loglik.shape[0]} models x {n} documents: if its "
                f"rows are documents of per-token values, add --per-token")
    raise InputError(f"--{name}: {name} has {m} values ({source}) but loglik has {n} documents "
                     f"({bob.source}){hint}")


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


def _score(args: argparse.Namespace) -> int:
    from provenance.score import load_lm, read_documents, score

    suffix = Path(args.out).suffix
    if suffix not in (".npz", ".jsonl"):
        raise InputError(f"--out: {args.out!r} must end in .npz or .jsonl")
    if args.per_token and suffix != ".jsonl":
        raise InputError(f"--out: {args.out!r}: per-token log-likelihoods (--per-token) are "
                         f"ragged lists; write them to a .jsonl file")
    check_output_file("--out", args.out)
    if args.store is not None and Path(args.store).exists() and not Path(args.store).is_dir():
        raise InputError(f"--store: {args.store!r} is a file; give a folder")
    try:
        model = load_lm(args.model)
    except ValueError as error:
        raise InputError(f"--model: {error}") from None
    try:
        documents, order = read_documents(args.documents, args.documents_field, args.split,
                                          args.order_field)
    except ValueError as error:
        raise InputError(f"--documents: {error}") from None
    scores = score(model, documents, batch_size=args.batch_size, tokens=args.tokens,
                   per_token=args.per_token, store=args.store, progress=not args.no_progress)
    columns = {"loglik": scores.loglik, "n_tokens": scores.n_tokens}
    if order is not None:
        columns["order"] = order
    _write_scores(Path(args.out), columns, scores.token_loglik)
    print(f"scored {len(documents)} documents ({int(scores.n_tokens.sum())} tokens); "
          f"wrote {args.out}")
    return 0


def _write_scores(path: Path, columns: dict, token_loglik) -> None:
    """Write the score arrays (and per-token lists) in one go, replacing the file atomically."""
    import io
    import os
    import tempfile

    if path.suffix == ".npz":
        buffer = io.BytesIO()
        np.savez(buffer, **columns)
        payload = buffer.getvalue()
    else:
        records = [{name: values[i].item() for name, values in columns.items()}
                   for i in range(len(columns["loglik"]))]
        for record, row in zip(records, token_loglik or [], strict=False):
            record["token_loglik"] = row.tolist()
        payload = "".join(json.dumps(record) + "\n" for record in records).encode()
    handle, temporary = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as file:
        file.write(payload)
    os.replace(temporary, path)


def _demo(demo_arguments: list[str]) -> int:
    """Hand every argument after `demo` to provenance.demo.main, imported only now."""
    import importlib.util

    if importlib.util.find_spec("provenance.demo") is None:
        raise InputError("the demo is not available: module provenance.demo is not installed "
                         "in this checkout")
    from provenance import demo

    return demo.main(demo_arguments) or 0


def _add_reading_flags(parser: argparse.ArgumentParser) -> None:
    lists = parser.add_mutually_exclusive_group()
    lists.add_argument("--per-token", action="store_true",
                       help="a field holding a list per document is its per-token values")
    lists.add_argument("--per-model", action="store_true",
                       help="a field holding a list per document is one value per model")
    parser.add_argument("--reduce", choices=REDUCTIONS, default="mean",
                        help="per-token values -> one per document (default: mean)")
    parser.add_argument("--tokens", metavar="START:STOP",
                        help="keep only these token positions of each document, e.g. 32: "
                        "(a negative start needs '=': --tokens=-64:)")
    parser.add_argument("--loss", action="store_true",
                        help="the values are losses (negative log-likelihoods): flip the sign")
    parser.add_argument("--split", metavar="NAME", help="split of a saved DatasetDict")


def _parser() -> argparse.ArgumentParser:
    from provenance.query import STATISTICS
    from provenance.stats import ALTERNATIVES, METHODS

    parser = OneLineParser(prog="python -m provenance", description=__doc__.split(
        "\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    query = commands.add_parser("query", help="test log-likelihoods against training order",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    query.add_argument("--loglik", required=True, metavar="FILE",
                       help="suspect model(s)' values: a file or a saved HuggingFace dataset")
    query.add_argument("--field", "--loglik-key", "--key", dest="field", metavar="NAME",
                       help="field holding them (default: loglik, else the only one; for a "
                       "file of several other fields, one model per field)")
    query.add_argument("--order", metavar="FILE", help="training order file (or --order-field)")
    query.add_argument("--order-key", metavar="NAME", help="its field (default: order)")
    query.add_argument("--order-field", metavar="NAME",
                       help="the --loglik file's field holding each document's training step "
                       "or position (any permutation or step index, any row order)")
    query.add_argument("--reference", metavar="FILE",
                       help="reference model's values, read like --loglik (same rows)")
    query.add_argument("--reference-key", metavar="NAME",
                       help="its field (default: --field's name if it has one, else reference, "
                       "else loglik, else the only one)")
    _add_reading_flags(query)
    query.add_argument("--n-tokens", metavar="NAME",
                       help="--loglik field of token counts: scores become per token")
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
    scorer = commands.add_parser("score", help="log-likelihoods of documents under an lm.py "
                                 "model (written by provenance.score.save_lm)")
    scorer.add_argument("--model", required=True, metavar="NPZ")
    scorer.add_argument("--documents", required=True, metavar="FILE",
                        help="(n, L) token array (.npy/.npz) or a field of token-id lists")
    scorer.add_argument("--documents-field", metavar="NAME")
    scorer.add_argument("--order-field", metavar="NAME",
                        help="a field of --documents copied to the output as `order`")
    scorer.add_argument("--split", metavar="NAME", help="split of a saved DatasetDict")
    scorer.add_argument("--tokens", metavar="START:STOP",
                        help="token positions summed into each document's loglik")
    scorer.add_argument("--batch-size", type=int, default=64)
    scorer.add_argument("--per-token", action="store_true",
                        help="also write every token's log-probability (.jsonl output)")
    scorer.add_argument("--store", metavar="DIR",
                        help="write finished batches here; rerun to resume after a crash")
    scorer.add_argument("--out", required=True, metavar="FILE",
                        help=".npz (loglik, n_tokens[, order]) or .jsonl (one object per "
                        "document)")
    scorer.add_argument("--no-progress", action="store_true")
    scorer.set_defaults(run=_score)
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
