"""Modular addition data: every pair (a, b) of residues mod p, labelled (a + b) mod p.

Kumar, Bordelon, Gershman, Pehlevan (2023), Sec. 5 / Fig. 2 (paper page `grokking.md`, Sec. 5):
the p^2 pairs are split at random into a train set (a fraction `train_fraction`, 0.9 in the
paper) and a test set. The MLP reads a pair as two concatenated one-hot vectors (D = 2p); the
transformer reads it as the token sequence (a, b, =) with "=" the extra token p (Nanda et al.
2023). All functions are pure; the split is one `jax.random.permutation` per run.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def check_modulus(p: int) -> None:
    """Raise ValueError unless p >= 2 (there is nothing to learn modulo 1)."""
    if isinstance(p, bool) or not isinstance(p, int | np.integer):
        raise TypeError(f"p={p!r} has type {type(p).__name__}; p must be an integer >= 2")
    if p < 2:
        raise ValueError(f"p={p!r} is out of range; p must be an integer >= 2")


def train_size(p: int, train_fraction: float) -> int:
    """Number of training pairs, floor(train_fraction * p^2), checked to leave both sets
    non-empty.

    Raises:
        ValueError: p < 2, train_fraction outside (0, 1), or a fraction so close to 0 or 1 that
            the train or test set would be empty.
    """
    check_modulus(p)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction={train_fraction!r} is out of range; train_fraction "
                         f"must lie strictly between 0 and 1")
    n_train = math.floor(train_fraction * p * p)
    if not 1 <= n_train <= p * p - 1:
        raise ValueError(f"train_fraction={train_fraction!r} with p={p} gives {n_train} training "
                         f"pairs out of {p * p}; both the train and the test set must be "
                         f"non-empty")
    return n_train


def all_pairs(p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, (a + b) mod p) for all p^2 pairs, a-major order; three int arrays of shape (p^2,)."""
    check_modulus(p)
    a, b = np.divmod(np.arange(p * p), p)
    return a, b, (a + b) % p


def one_hot_pairs(a: jax.Array, b: jax.Array, p: int) -> jax.Array:
    """Inputs of the MLP: [one_hot(a), one_hot(b)], shape (P, 2p), in the default float type."""
    dtype = jnp.result_type(float)
    return jnp.concatenate([jax.nn.one_hot(a, p, dtype=dtype), jax.nn.one_hot(b, p, dtype=dtype)],
                           axis=-1)


def token_sequences(a: jax.Array, b: jax.Array, p: int) -> jax.Array:
    """Inputs of the transformer: the sequences (a, b, =) with "=" the token p; shape (P, 3)."""
    equals = jnp.full_like(a, p)
    return jnp.stack([a, b, equals], axis=-1)


def random_split(key: jax.Array, p: int, n_train: int) -> dict[str, jax.Array]:
    """A random train/test split of the p^2 pairs (one permutation draw).

    Returns:
        a_train, b_train, y_train: (n_train,) ints; a_test, b_test, y_test: (p^2 - n_train,).
    """
    a, b, y = (jnp.asarray(v) for v in all_pairs(p))
    order = jax.random.permutation(key, p * p)
    train, test = order[:n_train], order[n_train:]
    return {"a_train": a[train], "b_train": b[train], "y_train": y[train],
            "a_test": a[test], "b_test": b[test], "y_test": y[test]}
