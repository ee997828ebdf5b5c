"""Score documents with a causal language model: the log-likelihoods the query test needs.

`score(model, documents)` returns, for each document x = (x_0, ..., x_{L-1}) in the order given,
log p(x) = sum_t log p(x_t | x_<t) in nats over the kept token positions (`tokens=START:STOP`,
e.g. "32:" drops a 32-token prompt as the authors of Kuditipudi et al. (2025) do), the number of
kept tokens, and optionally every token's log-probability. `model` is

- a callable `(tokens (B, W) int32) -> (B, W) log p(x_t | x_<t)` for any causal LM, or
- `(LMConfig, params)`: the byte transformer of `lm.py` (its own `token_log_likelihoods`).

Documents of different lengths are right-padded with `pad_token` to one width W (the longest
document) and the last batch is padded with whole padding rows, so a jitted model compiles once;
padded positions are ignored. This is exact for a causal model, whose value at position t
depends on tokens 0..t only (the callable must be causal).

Long runs: `store=DIRECTORY` writes every finished batch at once (an atomic `os.replace` of a
complete .npz), and a second call with the same store and arguments computes only the batches
missing; a batch file that cannot be read back is named in a `ScoreStoreWarning` and recomputed.
The store's `meta.json` keys it by the documents' checksum, the batch size, the token window and
the model's name (for `lm.py` models a checksum of the weights); a call with other values is
refused, naming the key. Memory is estimated before anything is allocated: the results, one
padded batch and, for `lm.py` models, its logits; a callable's own memory is its business.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lazyrich.core.checks import check_positive_integer, require_memory
from provenance.likelihoods import parse_tokens, scalar_field, token_window

TokenScorer = Callable[[np.ndarray], np.ndarray]
LOGIT_BYTES = 4 * 3  # float32 logits, log-softmax and one temporary per vocabulary entry


class ScoreStoreWarning(UserWarning):
    """A finished batch of a score store could not be read back (it is recomputed)."""


@dataclasses.dataclass(frozen=True)
class Scores:
    """What `score` returns, in the documents' order.

    loglik: (n,) float64 log-likelihood (nats) summed over each document's kept tokens: the
        `loglik` of `query_test` (pass `n_tokens` too for per-token scores).
    n_tokens: (n,) int64 kept tokens per document.
    token_loglik: with per_token=True, one float32 array (L_i,) per document of every token's
        log p(x_t | x_<t) (all positions, the window not applied); else None.
    """

    loglik: np.ndarray
    n_tokens: np.ndarray
    token_loglik: list[np.ndarray] | None


def lm_scorer(config, params) -> TokenScorer:
    """The byte transformer of `lm.py` as a TokenScorer (documents up to `context` bytes); one
    jitted function for all models, so a config and batch shape compile once per process."""
    return lambda tokens: np.asarray(_jitted_token_log_likelihoods()(config, params, tokens))


@functools.cache
def _jitted_token_log_likelihoods():
    import jax

    from provenance import lm

    return jax.jit(lm.token_log_likelihoods, static_argnums=0)


def params_checksum(params) -> str:
    """sha256 of a pytree's leaves (their dtype, shape and bytes), in tree order."""
    import jax

    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(params):
        leaf = np.asarray(leaf)
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return digest.hexdigest()


def _as_documents(documents) -> list[np.ndarray]:
    if hasattr(documents, "shape"):
        documents = np.asarray(documents)
        if documents.ndim != 2:
            raise ValueError(f"documents has shape {documents.shape}; give a (n, L) array of "
                             f"integer tokens or a sequence of 1-D token arrays")
    rows = list(documents)
    if not rows:
        raise ValueError("documents is empty; give at least one document")
    out = []
    for index, row in enumerate(rows):
        row = np.asarray(row)
        if row.ndim != 1 or row.size == 0 or row.dtype.kind not in "iu":
            raise ValueError(f"documents[{index}] has dtype {row.dtype} and shape {row.shape}; "
                             f"each document must be a non-empty 1-D array of integer tokens")
        if row.min() < 0:
            raise ValueError(f"documents[{index}] holds token {int(row.min())}; tokens must be "
                             f"non-negative integers")
        out.append(row.astype(np.int32))
    return out


def _documents_checksum(rows: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(len(row).to_bytes(8, "little"))
        digest.update(row.tobytes())
    return digest.hexdigest()


def _resolve_model(model, rows: list[np.ndarray], name: str | None) -> tuple[TokenScorer, str,
                                                                              int]:
    """(scorer, name for the store, vocabulary size for the memory estimate)."""
    from provenance.lm import BYTES, LMConfig

    if isinstance(model, tuple) and len(model) == 2 and isinstance(model[0], LMConfig):
        config, params = model
        longest = max(len(row) for row in rows)
        largest = max(int(row.max()) for row in rows)
        if longest > config.context or largest >= BYTES:
            raise ValueError(f"documents hold up to {longest} tokens with values up to "
                             f"{largest}; this lm.py model reads at most context="
                             f"{config.context} bytes (tokens 0..{BYTES - 1})")
        return lm_scorer(config, params), name or f"lm.py {params_checksum(params)}", BYTES
    if callable(model):
        return model, name or "", 0
    raise TypeError(f"model={model!r} must be a callable (tokens (B, W) -> log-probs (B, W)) or "
                    f"an (LMConfig, params) pair of provenance.lm")


def score(model, documents, *, batch_size: int = 64, tokens: slice | str | None = None,
          per_token: bool = False, store: str | os.PathLike | None = None, pad_token: int = 0,
          name: str | None = None, progress: bool = True) -> Scores:
    """Log-likelihoods of `documents` under a causal LM, batched and resumable.

    Args:
        model: a callable (tokens (B, W) int32 -> (B, W) log-probs, nats) or (LMConfig, params).
        documents: (n, L) integer tokens, or a sequence of n 1-D integer arrays (ragged).
        batch_size: documents per model call.
        tokens: the positions summed into `loglik`, "START:STOP" or a slice (per document).
        per_token: also return every token's log-probability.
        store: a directory to write finished batches to and resume from.
        pad_token: the token padding short documents and the last batch (ignored positions).
        name: the model's name in the store (default: a weight checksum for lm.py models; a
            callable has none, so a store cannot tell two callables apart without it).
        progress: show a progress bar of documents (with an ETA) on stderr.
    """
    check_positive_integer("batch_size", batch_size)
    check_positive_integer("pad_token", pad_token, minimum=0)
    rows = _as_documents(documents)
    window = parse_tokens(tokens)
    scorer, name, vocabulary = _resolve_model(model, rows, name)
    lengths = np.array([len(row) for row in rows], np.int64)
    begin, end = token_window(lengths, window)
    if np.any(end <= begin):
        empty = int(np.flatnonzero(end <= begin)[0])
        raise ValueError(f"tokens={tokens!r} keeps no token of documents[{empty}] ({lengths[empty]}"
                         f" tokens); choose a window every document reaches")
    n, width = len(rows), int(lengths.max())
    batch_size = min(batch_size, n)
    require_memory(8 * 3 * n + (4 * int(lengths.sum()) if per_token else 0)
                   + batch_size * width * (8 + vocabulary * LOGIT_BYTES),
                   f"scoring {n} documents of up to {width} tokens in batches of {batch_size}",
                   f"lower batch_size= (now {batch_size})")
    batches = -(-n // batch_size)
    folder = None if store is None else _open_store(
        store, {"documents_sha256": _documents_checksum(rows), "n_documents": n,
                "batch_size": batch_size, "tokens": [window.start, window.stop],
                "per_token": bool(per_token), "model": name})
    results = [None] * batches
    if folder is not None:
        for index in range(batches):
            results[index] = _read_batch(folder, index, per_token)
    bar = tqdm(total=n, unit="doc", desc="scoring", disable=not progress, file=sys.stderr,
               initial=sum(len(r["loglik"]) for r in results if r is not None))
    with bar:
        for index in range(batches):
            if results[index] is not None:
                continue
            chosen = range(index * batch_size, min(n, (index + 1) * batch_size))
            results[index] = _score_batch(scorer, [rows[i] for i in chosen], begin[chosen],
                                          end[chosen], batch_size, width, pad_token, per_token)
            if folder is not None:
                _write_batch(folder, index, results[index])
            bar.update(len(chosen))
    loglik = np.concatenate([r["loglik"] for r in results])
    token_loglik = None
    if per_token:
        token_loglik = [row[:length] for r in results for row, length in
                        zip(r["token_loglik"], r["lengths"], strict=True)]
    return Scores(loglik, end - begin, token_loglik)


def _score_batch(scorer: TokenScorer, rows: list[np.ndarray], begin: np.ndarray,
                 end: np.ndarray, batch_size: int, width: int, pad_token: int,
                 per_token: bool) -> dict:
    batch = np.full((batch_size, width), pad_token, np.int32)
    for i, row in enumerate(rows):
        batch[i, :len(row)] = row
    values = np.asarray(scorer(batch))
    if values.shape != batch.shape:
        raise ValueError(f"the model returned shape {values.shape} for tokens of shape "
                         f"{batch.shape}; it must return one log-probability per token")
    values = values[:len(rows)].astype(np.float32)
    position = np.arange(width)
    kept = (position >= begin[:, None]) & (position < end[:, None])
    chosen = np.where(kept, values, 0.0).astype(np.float64)
    if not np.all(np.isfinite(chosen)):
        raise ValueError("the model returned NaN or inf log-probabilities inside the kept token "
                         "window")
    result = {"loglik": chosen.sum(axis=1), "lengths": np.array([len(r) for r in rows])}
    if per_token:
        result["token_loglik"] = values
    return result


def _open_store(store, meta: dict) -> Path:
    folder = Path(store)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"store={str(store)!r} is a file; give a directory")
    if not folder.parent.is_dir():
        raise ValueError(f"store={str(store)!r} cannot be created: {str(folder.parent)!r} is not "
                         f"an existing directory")
    meta_path = folder / "meta.json"
    if folder.is_dir() and any(folder.iterdir()):
        try:
            saved = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            raise ValueError(f"store={str(store)!r} is a non-empty folder without a readable "
                             f"meta.json, so not a score store; choose another store") from None
        for key, value in meta.items():
            if saved.get(key) != value:
                raise ValueError(f"store={str(store)!r} holds scores for {key}={saved.get(key)!r}"
                                 f", not {value!r}; use another store (or delete this one)")
        return folder
    folder.mkdir(exist_ok=True)
    _atomic_write(meta_path, json.dumps(meta, indent=1).encode())
    return folder


def _atomic_write(path: Path, payload: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "wb") as file:
        file.write(payload)
    os.replace(temporary, path)


def _batch_path(folder: Path, index: int) -> Path:
    return folder / f"batch_{index:06d}.npz"


def _write_batch(folder: Path, index: int, result: dict) -> None:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **result)
    _atomic_write(_batch_path(folder, index), buffer.getvalue())


def _read_batch(folder: Path, index: int, per_token: bool) -> dict | None:
    path = _batch_path(folder, index)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            result = {key: archive[key] for key in archive.files}
        if per_token and "token_loglik" not in result or "loglik" not in result:
            raise ValueError("arrays missing")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"score store batch {str(path)!r} cannot be read back ({error}); it is "
                      f"recomputed", ScoreStoreWarning, stacklevel=3)
        return None
    return result


def read_documents(path: str | os.PathLike, field: str | None = None, split: str | None = None,
                   order: str | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Token documents (and the order field, if named) from a file `tables.open_table` reads: a
    (n, L) integer .npy / .npz array, or a field holding a list of token ids per row."""
    from provenance.tables import LikelihoodFileError, Ragged, open_table

    table = open_table(path, split)
    if field is None:
        others = [name for name in table.fields if name != order]
        if len(others) != 1:
            raise LikelihoodFileError(f"{str(path)!r} has fields {table.fields}; name the one "
                                      f"holding the token ids (--documents-field)")
        field = others[0]
    if field not in table.fields:
        raise LikelihoodFileError(f"{str(path)!r}: field {field!r} not found; the file has "
                                  f"{table.fields}")
    column = table.column(field)
    if isinstance(column, np.ndarray) and column.ndim == 2:
        column = Ragged(column.reshape(-1), np.arange(len(column) + 1) * column.shape[1])
    if not isinstance(column, Ragged):
        raise LikelihoodFileError(f"{str(path)!r} field {field!r} holds one number per row; "
                                  f"documents need a list of token ids per row")
    values = column.values
    if values.size and (np.any(values != np.round(values)) or values.min() < 0):
        raise LikelihoodFileError(f"{str(path)!r} field {field!r} holds values that are not "
                                  f"non-negative integer token ids")
    tokens = values.astype(np.int64)
    rows = [tokens[a:b] for a, b in zip(column.offsets[:-1], column.offsets[1:], strict=True)]
    order_values = None if order is None else scalar_field(table, order, "order",
                                                           "--order-field")
    return rows, order_values


def save_lm(path: str | os.PathLike, config, params) -> None:
    """Write an lm.py model (its LMConfig and weights) to one .npz file, atomically."""
    import io

    import jax

    leaves = jax.tree_util.tree_leaves(params)
    buffer = io.BytesIO()
    np.savez(buffer, config=np.array(json.dumps(dataclasses.asdict(config))),
             **{f"leaf_{i:04d}": np.asarray(leaf) for i, leaf in enumerate(leaves)})
    _atomic_write(Path(path), buffer.getvalue())


def load_lm(path: str | os.PathLike) -> tuple:
    """(LMConfig, params) from a file written by `save_lm`; shapes checked against the
    architecture its config describes."""
    import jax
    from flax import nnx

    from provenance.lm import LMConfig, _template

    try:
        with np.load(path, allow_pickle=False) as archive:
            config = LMConfig(**json.loads(str(archive["config"])))
            leaves = [archive[f"leaf_{i:04d}"] for i in range(len(archive.files) - 1)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{str(path)!r} is not an lm.py model written by save_lm: "
                         f"{error}") from None
    expected, structure = jax.tree_util.tree_flatten(nnx.to_pure_dict(_template(config)[1]))
    shapes = [tuple(leaf.shape) for leaf in expected]
    if [tuple(leaf.shape) for leaf in leaves] != shapes:
        raise ValueError(f"{str(path)!r}: its weights do not match the architecture of its "
                         f"config {config}")
    return config, jax.tree_util.tree_unflatten(structure, leaves)


__all__: Sequence[str] = ("Scores", "ScoreStoreWarning", "TokenScorer", "load_lm", "lm_scorer",
                          "params_checksum", "read_documents", "save_lm", "score")
