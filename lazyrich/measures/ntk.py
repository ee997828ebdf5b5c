"""The empirical neural tangent kernel of any function of a parameter pytree, chunked.

K_ab = <d y_a / d theta, d y_b / d theta> over the flattened outputs y of `fn(params)` (Jacot et
al. 2018; paper page `connectivity.md` Sec. 3, where theta is the recurrent matrix W_h and a runs
over (time, trial, output)). K = J J^T with J the (P, n_params) Jacobian, computed without ever
holding J: the outputs are taken `chunk_size` at a time; for a chunk, reverse mode (`jax.vjp`,
one pass per output, vmapped) gives its rows J_c (chunk_size, n_params), and forward mode on the
linearised function (`jax.linearize`, one pass per row) gives J J_c^T (P, chunk_size), a block of
K. Memory: chunk_size x n_params (+ P x chunk_size); time: P reverse and P forward passes. The
chunks follow one another in a `lax.map`, so the whole kernel is one compiled computation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from lazyrich.core.checks import require_memory

DEFAULT_JACOBIAN_ELEMENTS = 1 << 23


def _restrict(fn: Callable, params, wrt: Sequence[str] | None):
    """(function of the differentiated parameters only, those parameters)."""
    if wrt is None:
        return fn, params
    if not isinstance(params, dict):
        raise TypeError(f"wrt={list(wrt)!r} needs params to be a dict; got "
                        f"{type(params).__name__}")
    unknown = [k for k in wrt if k not in params]
    if unknown or not wrt:
        raise ValueError(f"wrt={list(wrt)!r}: {unknown or 'nothing'} is not a key of params; "
                         f"wrt must name some of {sorted(params)}")
    fixed = {k: v for k, v in params.items() if k not in wrt}
    return (lambda chosen: fn({**fixed, **chosen})), {k: params[k] for k in wrt}


def default_chunk_size(n_outputs: int, n_params: int) -> int:
    """Outputs per chunk so that a chunk's Jacobian rows hold about 2^23 numbers."""
    return max(1, min(n_outputs, DEFAULT_JACOBIAN_ELEMENTS // max(n_params, 1)))


def empirical_ntk(fn: Callable, params, *, wrt: Sequence[str] | None = None,
                  chunk_size: int | None = None) -> jax.Array:
    """The empirical NTK K = J J^T of `fn` at `params`, J = d ravel(fn(params)) / d theta.

    Args:
        fn: params -> array of any shape (P elements once flattened, in C order).
        params: a pytree of arrays (the point at which the kernel is taken).
        wrt: keys of a dict `params` to differentiate with respect to (the others are held
            fixed); default: every leaf.
        chunk_size: outputs whose Jacobian rows are held at once (default: about 2^23 numbers).

    Returns:
        (P, P) symmetric positive semi-definite kernel, in the dtype of fn's output.

    Raises:
        TypeError / ValueError: bad `wrt` or `chunk_size`.
        MemoryEstimateError: the (P, P) kernel and a chunk's Jacobian rows would not fit in
            the memory this process may use (checked from shapes, before anything runs).
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size={chunk_size!r} is not allowed; chunk_size must be a "
                         f"positive integer or None")
    restricted, variable = _restrict(fn, params, wrt)

    def flat(p):
        return jnp.ravel(restricted(p))

    outputs, pullback = jax.vjp(flat, variable)
    _, pushforward = jax.linearize(flat, variable)
    n_outputs = outputs.shape[0]
    n_params = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(variable))
    chunk_size = min(chunk_size or default_chunk_size(n_outputs, n_params), n_outputs)
    n_chunks = -(-n_outputs // chunk_size)
    itemsize = outputs.dtype.itemsize
    # the kernel, a chunk's one-hot cotangents and Jacobian rows, and their images
    require_memory(itemsize * (n_chunks * chunk_size * n_outputs + chunk_size * n_outputs
                               + chunk_size * n_params + chunk_size * n_outputs),
                   f"empirical_ntk of {n_outputs} outputs x {n_params} parameters "
                   f"(chunks of {chunk_size} outputs)",
                   f"lower chunk_size= (now {chunk_size}) or take the kernel on fewer outputs")

    def block(start):
        index = start + jnp.arange(chunk_size)
        # Indices past the last output give zero cotangents, hence zero rows (sliced off below).
        cotangents = jax.nn.one_hot(index, n_outputs, dtype=outputs.dtype)
        (rows,) = jax.vmap(pullback)(cotangents)
        return jax.vmap(pushforward)(rows)

    blocks = lax.map(block, jnp.arange(n_chunks) * chunk_size)
    return blocks.reshape(n_chunks * chunk_size, n_outputs)[:n_outputs]
