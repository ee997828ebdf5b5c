"""Per-document log-likelihoods from the files people have: `load_likelihoods`.

The query test (`query.py`) needs one log-likelihood per training document (and model), the
step at which Alice's run saw each document, and optionally token counts. Released pipelines
store other things: the authors of Kuditipudi et al. (2025) save **per-token losses** of each
document (a list per row of a HuggingFace dataset, the first tokens a prompt whose loss is
masked) and average them per document. This module turns any such file into the arrays
`query_test` takes, and refuses to guess:

- a field holding one number per row is one value per document;
- a field holding a list per row is either per-token values of that document (`per_token=True`,
  reduced with `reduce="mean"` or `"sum"` over the token window `tokens=START:STOP`), or one
  value per model (`per_token=False`; every list the same length). With neither, lists are an
  error naming the file, the field and both flags: read as models, per-token lists of Pythia's
  fixed 64-token windows would look like 64 models and give a confident wrong answer;
- a 2-D .npy / .npz array is (models, n), the layout of `query_test`'s own argument, unless
  `per_token=True`, when its rows are documents and its columns tokens;
- `loss=True` reads losses (negative log-likelihoods, nats): the sign flips;
- the order field may hold any permutation or step index (ties, any row order): the test uses
  its values, never the row order of the file.

Formats (`tables.py`): .npy, .npz, .csv, .jsonl, .parquet and a HuggingFace dataset directory
written by `datasets.save_to_disk` (read with pyarrow alone). Errors are `LikelihoodFileError`
(a ValueError) naming the file, the field and the argument / flag that resolves them; reading
writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from provenance.tables import Column, LikelihoodFileError, Ragged, Table, open_table

REDUCTIONS = ("mean", "sum")
DEFAULT_FIELD = "loglik"


@dataclasses.dataclass(frozen=True)
class Likelihoods:
    """What `load_likelihoods` read, ready for `query_test(loglik, order, ..., n_tokens=)`.

    loglik: (n,) or (models, n) float64 log-likelihoods in nats (per token if reduced by mean).
    order: (n,) training step / position of each document, or None (no order field asked for).
    n_tokens: (n,) token counts from the `n_tokens` field (for query_test's normalisation), or
        None.
    token_counts: (n,) tokens kept per document when per-token values were reduced, else None.
    models: model names (one per row of a 2-D loglik) when the file names them, else None.
    source: where the values came from and how they were read, for reports.
    """

    loglik: np.ndarray
    order: np.ndarray | None
    n_tokens: np.ndarray | None
    token_counts: np.ndarray | None
    models: tuple[str, ...] | None
    source: str


def parse_tokens(tokens: slice | str | None) -> slice:
    """`tokens` as a slice without a step: None (all), a slice, or "START:STOP" ("32:", ":64",
    "-64:"), Python slice semantics applied to each document's token list."""
    if tokens is None:
        return slice(None)
    if isinstance(tokens, str):
        parts = tokens.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            bounds = [int(part) if part.strip() else None for part in parts]
        except ValueError:
            raise ValueError(f"tokens={tokens!r} (--tokens) must be START:STOP with integers, "
                             f"either may be empty, e.g. '32:96' or '32:'") from None
        return slice(*bounds)
    if isinstance(tokens, slice) and tokens.step in (None, 1) and all(
            bound is None or isinstance(bound, int) for bound in (tokens.start, tokens.stop)):
        return slice(tokens.start, tokens.stop)
    raise ValueError(f"tokens={tokens!r} (--tokens) must be None, a slice of integers without a "
                     f"step, or a 'START:STOP' string")


def token_window(lengths: np.ndarray, window: slice) -> tuple[np.ndarray, np.ndarray]:
    """Per-row [begin, end) of `window` applied to lists of `lengths`, as Python slices do."""
    def bound(value, default):
        if value is None:
            return default
        position = lengths + value if value < 0 else np.full_like(lengths, value)
        return np.clip(position, 0, lengths)

    begin = bound(window.start, np.zeros_like(lengths))
    end = bound(window.stop, lengths)
    return begin, np.maximum(end, begin)


def reduce_ragged(column: Ragged, window: slice, reduce: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean or sum of the values inside `window`, and the number of values kept.

    Returns (reduced (rows,) float64, kept (rows,) int64); a row with no value in the window
    reduces to NaN (the caller names it).
    """
    begin, end = token_window(column.lengths, window)
    kept = end - begin
    starts = column.offsets[:-1] + begin
    padded = np.append(column.values, 0.0)  # index `total` is valid for a window at the end
    bounds = np.stack([starts, column.offsets[:-1] + end], axis=1).reshape(-1)
    sums = np.add.reduceat(padded, bounds)[::2] if bounds.size else np.zeros(0)
    sums = np.where(kept > 0, sums, np.nan)
    if reduce == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            sums = sums / kept
    return sums, kept


def _choose_fields(table: Table, field: str | Sequence[str] | None,
                   exclude: set[str]) -> list[str]:
    if field is None:
        candidates = [name for name in table.fields if name not in exclude]
        if DEFAULT_FIELD in candidates:
            return [DEFAULT_FIELD]
        if len(candidates) == 1:
            return candidates
        raise LikelihoodFileError(f"{str(table.path)!r} has fields {table.fields}; name the one "
                                  f"holding the likelihoods with field= (--field)")
    names = [field] if isinstance(field, str) else list(field)
    if not names or not all(isinstance(name, str) for name in names):
        raise TypeError(f"field={field!r} must be a field name or a list of names")
    for name in names:
        if name not in table.fields:
            raise LikelihoodFileError(f"{str(table.path)!r}: field {name!r} not found (key "
                                      f"{name!r} not found); the file has {table.fields}")
    return names


def _read_rows_of(table: Table, name: str, column: Column, per_token: bool | None,
                  window: slice, reduce: str) -> tuple[np.ndarray, np.ndarray | None]:
    """One field as (models, n) values and, for per-token fields, (n,) kept token counts."""
    where = f"{str(table.path)!r} field {name!r}"
    if (column.shape[-1] if isinstance(column, np.ndarray) else column.lengths.size) == 0:
        raise LikelihoodFileError(f"{where} holds no documents")
    if isinstance(column, np.ndarray) and column.ndim == 1:
        if per_token:
            raise LikelihoodFileError(f"{where} holds one number per document, not per-token "
                                      f"lists; drop per_token=True (--per-token)")
        return column[None, :], None
    if isinstance(column, np.ndarray) and not per_token:
        return column, None  # a 2-D array: (models, n)
    if isinstance(column, np.ndarray):
        rows, length = column.shape
        column = Ragged(column.reshape(-1), np.arange(rows + 1, dtype=np.int64) * length)
    lengths = column.lengths
    if per_token is None:
        raise LikelihoodFileError(
            f"{where} holds a list per row (lengths {int(lengths.min())} to "
            f"{int(lengths.max())}); say how to read it: per_token=True (--per-token) for "
            f"per-token values of each document, reduced by reduce= (--reduce), or "
            f"per_token=False (--per-model) for one value per model")
    if per_token:
        reduced, kept = reduce_ragged(column, window, reduce)
        empty = np.flatnonzero(kept == 0)
        if empty.size:
            raise LikelihoodFileError(
                f"{where}: the document in row {int(empty[0]) + 1} ({int(lengths[empty[0]])} "
                f"tokens) keeps no token in the window tokens={_describe(window)} (--tokens); "
                f"{empty.size} document(s) are empty")
        return reduced[None, :], kept
    if lengths.size and np.any(lengths != lengths[0]):
        raise LikelihoodFileError(
            f"{where} holds lists of different lengths ({int(lengths.min())} to "
            f"{int(lengths.max())}), so they cannot be one value per model (per_token=False, "
            f"--per-model); per-token lists need per_token=True (--per-token)")
    return column.values.reshape(lengths.size, -1).T, None


def scalar_field(table: Table, name: str, what: str, flag: str) -> np.ndarray:
    """Field `name` of `table` as one finite number per document (LikelihoodFileError naming the
    file, the field, `what` it is and the `flag` that names it, otherwise)."""
    if name not in table.fields:
        raise LikelihoodFileError(f"{str(table.path)!r}: {what} field {name!r} ({flag}) not "
                                  f"found; the file has {table.fields}")
    column = table.column(name)
    if not (isinstance(column, np.ndarray) and column.ndim == 1):
        raise LikelihoodFileError(f"{str(table.path)!r} field {name!r} ({flag}) must hold one "
                                  f"number per document, not a list or a 2-D array")
    _check_finite(table, name, column)
    return column


def _check_finite(table: Table, name: str, values: np.ndarray, tokens: bool = False) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        index = int(bad[0][-1])
        raise LikelihoodFileError(
            f"{str(table.path)!r} field {name!r} has {len(bad)} non-finite value(s) (NaN or inf), "
            f"first at row {index + 1}" + (" (among that document's kept tokens)" if tokens
                                            else "") + "; drop or impute those documents")


def load_likelihoods(path: str | Path, *, field: str | Sequence[str] | None = None,
                     per_token: bool | None = None, reduce: str = "mean",
                     tokens: slice | str | None = None, loss: bool = False,
                     n_tokens: str | None = None, order: str | None = None,
                     split: str | None = None) -> Likelihoods:
    """Read per-document log-likelihoods (and optionally the training order) from a file.

    Args:
        path: a .npy, .npz, .csv, .jsonl or .parquet file, or a directory written by
            `datasets.Dataset.save_to_disk` / `DatasetDict.save_to_disk`.
        field: the array / column / field holding the values; a list of names gives one model
            per field. Default: the one called "loglik", else the only one besides `order` and
            `n_tokens`.
        per_token: how to read a field that holds a list per row (or a 2-D array): True, the
            per-token values of each document (reduced); False, one value per model. None
            (default) refuses lists; a 2-D array is then (models, n).
        reduce: "mean" (per-token average, the authors' choice) or "sum" (the document's total)
            over the kept tokens, with per_token=True.
        tokens: the window of each document's tokens to keep, "START:STOP" or a slice (Python
            semantics per document, e.g. "32:" drops a 32-token prompt, ":-1" the last token).
        loss: the values are losses (negative log-likelihoods, nats); they are negated.
        n_tokens: a field holding each document's token count, returned for query_test's
            per-token normalisation (not with per_token=True and reduce="mean", which is already
            per token).
        order: a field holding the step or position at which Alice's run saw each document:
            any permutation or step index, ties allowed, in any row order.
        split: the split of a saved DatasetDict (needed when it has more than one).
    """
    options = check_options(per_token=per_token, reduce=reduce, tokens=tokens, loss=loss,
                            n_tokens=n_tokens, order=order)
    return read_likelihoods(open_table(path, split), field=field, **options)


def check_options(*, per_token: bool | None = None, reduce: str = "mean",
                  tokens: slice | str | None = None, loss: bool = False,
                  n_tokens: str | None = None, order: str | None = None) -> dict:
    """Check `load_likelihoods`' reading options before any file is opened; returns them for
    `read_likelihoods` (with `tokens` parsed into `window`)."""
    if per_token not in (None, True, False):
        raise TypeError(f"per_token={per_token!r} must be None, True or False")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce={reduce!r} (--reduce) must be one of {REDUCTIONS}")
    window = parse_tokens(tokens)
    if not per_token and (tokens is not None or reduce != "mean"):
        raise ValueError(f"tokens={tokens!r} / reduce={reduce!r} (--tokens / --reduce) apply to "
                         f"per-token lists only; add per_token=True (--per-token)")
    if per_token and reduce == "mean" and n_tokens is not None:
        raise ValueError(f"n_tokens={n_tokens!r} (--n-tokens) would normalise per-token means a "
                         f"second time; use it with reduce='sum' or per-document values")
    return {"per_token": per_token, "reduce": reduce, "window": window, "loss": bool(loss),
            "n_tokens": n_tokens, "order": order}


def read_likelihoods(table: Table, *, field: str | Sequence[str] | None,
                     per_token: bool | None, reduce: str, window: slice, loss: bool,
                     n_tokens: str | None, order: str | None) -> Likelihoods:
    """`load_likelihoods` on a table already opened (options already checked)."""
    names = _choose_fields(table, field, {name for name in (order, n_tokens) if name})
    rows, counts = [], None
    for name in names:
        values, kept = _read_rows_of(table, name, table.column(name), per_token, window, reduce)
        _check_finite(table, name, values, tokens=kept is not None)
        rows.append(values)
        counts = kept if kept is not None else counts
    if len({block.shape[-1] for block in rows}) > 1:
        raise LikelihoodFileError(f"{str(table.path)!r} fields {names} hold different numbers of "
                                  f"documents ({[block.shape[-1] for block in rows]})")
    loglik = np.concatenate(rows, axis=0)
    loglik = -loglik if loss else loglik
    order_values = None if order is None else scalar_field(table, order, "order",
                                                            "order= / --order-field")
    count_values = None if n_tokens is None else scalar_field(table, n_tokens, "token count",
                                                               "n_tokens= / --n-tokens")
    for name, values in (("order", order_values), ("n_tokens", count_values)):
        if values is not None and values.shape[-1] != loglik.shape[-1]:
            raise LikelihoodFileError(f"{str(table.path)!r}: the {name} field has "
                                      f"{values.shape[-1]} values but the likelihoods "
                                      f"{loglik.shape[-1]} documents")
    models = tuple(names) if len(names) > 1 else None
    if loglik.shape[0] == 1:
        loglik = loglik[0]
    how = (f"per-token {reduce} of tokens {_describe(window)}" if per_token
           else "one value per model" if per_token is False and loglik.ndim == 2 else "")
    fields = "" if table.path.suffix == ".npy" else (
        f" field{'s' if len(names) > 1 else ''} {names if len(names) > 1 else repr(names[0])}")
    source = (f"{table.path}{fields}" + (f" ({how})" if how else "")
              + (", losses negated" if loss else ""))
    return Likelihoods(loglik, order_values, count_values, counts, models, source)


def _describe(window: slice) -> str:
    start = "" if window.start is None else window.start
    stop = "" if window.stop is None else window.stop
    return "(all)" if window == slice(None) else f"{start}:{stop}"
