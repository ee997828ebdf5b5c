"""Columns of the files likelihoods arrive in: .npy, .npz, .csv, .jsonl, .parquet and a saved
HuggingFace dataset directory, read without `datasets` or pandas.

A file is opened as a `Table`: its field names and a `column(name)` that returns either
- a 1-D numpy array: one number per row (document);
- a 2-D numpy array: a .npy / .npz matrix (its meaning is decided by `likelihoods.py`);
- a `Ragged` column: one list of numbers per row, possibly of different lengths, stored flat.

A HuggingFace dataset saved by `datasets.Dataset.save_to_disk` is a directory holding
`state.json` (its `_data_files` list the shards in order), `dataset_info.json` and the shards
`data-00000-of-0000N.arrow`, each an Arrow IPC *stream*; a `DatasetDict` adds a
`dataset_dict.json` (`{"splits": [...]}`) above one such directory per split. Reading needs only
pyarrow (the `data` extra), imported when a .parquet file or a dataset directory is opened; a
.jsonl file is read by pyarrow's multithreaded JSON reader when pyarrow is installed, and by
Python's `json` otherwise or when pyarrow refuses it (mixed types, NaN), so that the error can
name the row.

Every error is a `LikelihoodFileError` (a ValueError) naming the file and the field.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import numbers
from collections.abc import Callable
from pathlib import Path

import numpy as np

SUFFIXES = (".npy", ".npz", ".csv", ".jsonl", ".parquet")


class LikelihoodFileError(ValueError):
    """A likelihood file cannot be read unambiguously; the message names file, field and flag."""


@dataclasses.dataclass(frozen=True)
class Ragged:
    """One list of numbers per row: row i is values[offsets[i]:offsets[i + 1]]."""

    values: np.ndarray   # (total,) flat values of every row, in row order
    offsets: np.ndarray  # (rows + 1,) int64, offsets[0] = 0, non-decreasing

    @property
    def lengths(self) -> np.ndarray:
        """(rows,) number of values in each row."""
        return np.diff(self.offsets)


Column = np.ndarray | Ragged


@dataclasses.dataclass(frozen=True)
class Table:
    """A file's fields and a reader of one field at a time."""

    path: Path
    fields: list[str]
    column: Callable[[str], Column]


def open_table(path: str | Path, split: str | None = None) -> Table:
    """Open a likelihood file or a saved HuggingFace dataset directory (`split`: which split of
    a saved DatasetDict)."""
    path = Path(path)
    if path.is_dir():
        return _open_dataset_directory(path, split)
    if path.suffix not in SUFFIXES:
        raise LikelihoodFileError(f"{str(path)!r} has suffix {path.suffix!r}; allowed formats "
                                  f"are {SUFFIXES} or a saved HuggingFace dataset directory")
    if not path.is_file():
        raise LikelihoodFileError(f"file {str(path)!r} does not exist")
    try:
        if path.suffix == ".npy":
            return _array_table(path, {"array": np.load(path, allow_pickle=False)})
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return _array_table(path, {name: archive[name] for name in archive.files})
        if path.suffix == ".parquet":
            import pyarrow.parquet as parquet

            return _arrow_table(path, _require_pyarrow(path, lambda: parquet.read_table(path)))
        if path.suffix == ".jsonl":
            table = _arrow_json(path)
            if table is not None:
                return _arrow_table(path, table)
        return _rows_table(path, _read_rows(path))
    except LikelihoodFileError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise LikelihoodFileError(f"cannot read {str(path)!r}: {error}") from None


def _require_pyarrow(path: Path, read: Callable):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise LikelihoodFileError(f"reading {str(path)!r} needs pyarrow: pip install "
                                  f"'lazyrich[data]'") from None
    return read()


def _arrow_json(path: Path):
    """The .jsonl file through pyarrow's multithreaded reader, or None when pyarrow is missing
    or cannot read it (mixed types, NaN, no rows, ...): the Python reader then names the row."""
    try:
        import pyarrow as pa
        import pyarrow.json as arrow_json
    except ImportError:
        return None
    try:
        return arrow_json.read_json(path)
    except (pa.ArrowException, OSError):
        return None


def _array_table(path: Path, arrays: dict[str, np.ndarray]) -> Table:
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf" or array.ndim not in (1, 2):
            raise LikelihoodFileError(
                f"{str(path)!r} array {name!r} has dtype {array.dtype} and shape {array.shape}; "
                f"a likelihood array must be numeric, 1-D (one value per document) or 2-D")
    return Table(path, list(arrays), lambda name: arrays[name])


def _read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        if path.suffix == ".csv":
            rows = list(csv.DictReader(handle))
        else:
            rows = []
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise LikelihoodFileError(f"{str(path)!r} line {number} is not JSON: "
                                                  f"{error}") from None
    if not rows or not all(isinstance(row, dict) for row in rows):
        raise LikelihoodFileError(f"{str(path)!r} has no rows of named values (a .csv needs a "
                                  f"header row, a .jsonl one JSON object per line)")
    return rows


def _rows_table(path: Path, rows: list[dict]) -> Table:
    fields = list(rows[0])

    def column(name: str) -> Column:
        values = []
        for number, row in enumerate(rows, start=1):
            if name not in row:
                raise LikelihoodFileError(f"{str(path)!r} row {number} has no field {name!r} "
                                          f"(it has {sorted(row)})")
            values.append(row[name])
        if path.suffix == ".csv":
            return _numbers(path, name, [_csv_number(path, name, i, v)
                                         for i, v in enumerate(values, start=1)])
        return _json_column(path, name, values)

    return Table(path, fields, column)


def _csv_number(path: Path, name: str, row: int, text: str | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise LikelihoodFileError(f"{str(path)!r} field {name!r} row {row} holds {text!r}, not "
                                  f"a number (non-numeric values)") from None


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _json_column(path: Path, name: str, values: list) -> Column:
    kinds = ["number" if _is_number(v) else "list" if isinstance(v, list) else
             "null" if v is None else type(v).__name__ for v in values]
    distinct = sorted(set(kinds))
    if distinct == ["number"]:
        return _numbers(path, name, values)
    if distinct == ["list"]:
        lengths = np.array([len(v) for v in values], np.int64)
        try:
            flat = np.fromiter(itertools.chain.from_iterable(values), np.float64,
                               count=int(lengths.sum()))
        except (TypeError, ValueError):
            raise LikelihoodFileError(f"{str(path)!r} field {name!r} holds lists with "
                                      f"non-numeric elements (non-numeric values)") from None
        return Ragged(flat, np.concatenate([[0], np.cumsum(lengths)]))
    first = {kind: kinds.index(kind) + 1 for kind in distinct}
    odd = [kind for kind in distinct if kind not in ("number", "list")]
    if odd:
        raise LikelihoodFileError(f"{str(path)!r} field {name!r} holds non-numeric values: "
                                  f"{odd[0]} at row {first[odd[0]]}")
    raise LikelihoodFileError(
        f"{str(path)!r} field {name!r} holds mixed types: "
        + ", ".join(f"{kind} (first at row {row})" for kind, row in first.items())
        + "; every row must hold a number, or every row a list of numbers")


def _numbers(path: Path, name: str, values) -> np.ndarray:
    try:
        return np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise LikelihoodFileError(f"{str(path)!r} field {name!r} holds non-numeric "
                                  f"values") from None


def _arrow_table(path: Path, table) -> Table:
    def column(name: str) -> Column:
        return arrow_column(path, name, table.column(name).combine_chunks())

    return Table(path, list(table.column_names), column)


def arrow_column(path: Path, name: str, array) -> Column:
    """A pyarrow Array of numbers or of lists of numbers as a numpy / `Ragged` column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    where = f"{str(path)!r} field {name!r}"
    if array.null_count:
        row = int(np.flatnonzero(np.asarray(array.is_null()))[0]) + 1
        raise LikelihoodFileError(f"{where} has no value (null or missing) at row {row}")
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return array.to_numpy(zero_copy_only=False).astype(np.float64)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or \
            pa.types.is_fixed_size_list(kind):
        inner = kind.value_type
        if not (pa.types.is_integer(inner) or pa.types.is_floating(inner)):
            raise LikelihoodFileError(f"{where} holds lists of {inner}, not of numbers "
                                      f"(non-numeric values)")
        values = array.flatten()
        if values.null_count:
            raise LikelihoodFileError(f"{where} has a null (missing) element inside a list")
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.int64)
        return Ragged(values.to_numpy(zero_copy_only=False).astype(np.float64),
                      np.concatenate([[0], np.cumsum(lengths)]))
    raise LikelihoodFileError(f"{where} has type {kind}; it must hold numbers or lists of "
                              f"numbers (non-numeric values)")


def _open_dataset_directory(path: Path, split: str | None) -> Table:
    if (path / "dataset_dict.json").is_file():
        try:
            splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        except (OSError, ValueError, KeyError, TypeError):
            raise LikelihoodFileError(f"{str(path)!r}: dataset_dict.json does not list "
                                      f"'splits'") from None
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in splits:
            raise LikelihoodFileError(f"{str(path)!r} is a saved DatasetDict with splits "
                                      f"{splits}; choose one with split= (--split), got "
                                      f"{split!r}")
        return _open_dataset_directory(path / split, None)
    if split is not None:
        raise LikelihoodFileError(f"split={split!r} (--split) was given but {str(path)!r} is "
                                  f"not a saved DatasetDict (no dataset_dict.json)")
    state = path / "state.json"
    if not state.is_file():
        raise LikelihoodFileError(
            f"{str(path)!r} is a folder but not a saved HuggingFace dataset (no state.json or "
            f"dataset_dict.json, as `datasets.Dataset.save_to_disk` writes)")
    try:
        shards = [path / entry["filename"] for entry in json.loads(state.read_text())
                  ["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise LikelihoodFileError(f"{str(state)!r} does not list the dataset's '_data_files'"
                                  ) from None
    missing = [str(shard) for shard in shards if not shard.is_file()]
    if missing or not shards:
        raise LikelihoodFileError(f"{str(path)!r}: shard file(s) {missing or shards} listed in "
                                  f"state.json are missing")
    return _arrow_table(path, _require_pyarrow(path, lambda: _read_shards(shards)))


def _read_shards(shards: list[Path]):
    import pyarrow as pa

    tables = []
    for shard in shards:
        with pa.memory_map(str(shard)) as source:
            try:
                tables.append(pa.ipc.open_stream(source).read_all())
            except pa.ArrowInvalid as error:
                raise LikelihoodFileError(f"cannot read {str(shard)!r} as an Arrow stream: "
                                          f"{error}") from None
    return pa.concat_tables(tables)
