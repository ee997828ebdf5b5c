"""Token sequences as one flat array plus offsets: the input form of both span indexes.

Kuditipudi et al. (2025), observational setting: Alice's training examples and Bob's published
texts are lists of token-id sequences. `provenance.observational` (hashed in-memory index) and
`provenance.suffix_index` (on-disk suffix array) both read them through `as_sequences`, so the
two indexes accept exactly the same inputs and refuse the same bad ones.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def as_sequences(sequences, offsets, name: str,
                 before_copy: Callable[[int], None]) -> tuple[np.ndarray, np.ndarray]:
    """Token sequences as (flat int64 tokens (n_tokens,), offsets (n_sequences + 1,)).

    sequences: a list of 1-D integer arrays, one 1-D array (one sequence), or a flat 1-D array
    with `offsets` (n_sequences + 1,), sequence j = sequences[offsets[j]:offsets[j + 1]].
    `before_copy(n_tokens)` runs once the token count is known and before the tokens are
    copied, so a memory check can refuse before anything proportional to the input is built.
    """
    if offsets is None:
        if isinstance(sequences, np.ndarray) and sequences.ndim == 1:
            sequences = [sequences]
        parts = [np.asarray(s) for s in sequences]
        if not parts or any(p.ndim != 1 for p in parts):
            raise ValueError(f"{name} must be a non-empty list of 1-D token arrays, got shapes "
                             f"{[p.shape for p in parts][:5]}")
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
        before_copy(int(offsets[-1]))
        nonempty = [p for p in parts if p.size]  # empty float arrays must not upcast ids
        flat = np.concatenate(nonempty) if nonempty else np.zeros(0, np.int64)
    else:
        flat, offsets = np.asarray(sequences), np.asarray(offsets)
        if flat.ndim != 1 or offsets.ndim != 1 or len(offsets) < 2 \
                or not np.issubdtype(offsets.dtype, np.integer) or offsets[0] != 0 \
                or offsets[-1] != len(flat) or np.any(np.diff(offsets) < 0):
            raise ValueError(f"{name} offsets must be 1-D non-decreasing integers from 0 to the "
                             f"length of the flat 1-D token array; got token shape {flat.shape}, "
                             f"offsets {offsets.ravel()[:3]}...{offsets.ravel()[-3:]}")
        before_copy(len(flat))
    if flat.size and not np.issubdtype(flat.dtype, np.integer):
        raise TypeError(f"{name} must hold integer token ids, got dtype {flat.dtype}")
    if flat.size == 0 or flat.min() < 0:
        raise ValueError(f"{name} must hold >= 1 token id, all >= 0; got {flat.size} tokens, "
                         f"smallest {flat.min(initial=0)}")
    return flat.astype(np.int64), offsets.astype(np.int64)
