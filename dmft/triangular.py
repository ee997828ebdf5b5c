"""Triangular solves in jax.numpy (matrix products and one short loop per leaf) for the DMFT's
compiled iterations.

Why not `jax.scipy.linalg.solve_triangular`: on CPU, jaxlib 0.10's LAPACK kernels split a
batched call over XLA's intra-op thread pool and block until the pieces are done. When a compiled
program runs as many such calls at once as the pool has threads (two on a 2-core machine: the
weight and bulk kernels of a vmapped solve are independent), every pool thread waits for pieces
that no free thread is left to run, and the program never returns. `lazyrich compare`'s batched
solve hung that way 3 times in 5 (gdb: both `tf_XLAEigen` threads in `lapack_dtrsm_ffi` ->
`ParallelBatchMap` -> `BlockingCounter::Wait`, every other pool thread idle). XLA's own
operations have no such wait; the solves here use nothing else, with the same flop count as a
blocked forward substitution.

On GPUs the library's solves (cuBLAS trsm) are used instead: there the row-by-row loops are
hundreds of small dependent kernel launches, and one DMFT iteration at n = 801, M = 4000 took
12.2 s against 1.16 s with the library's solves on an H200 (`benchmarks/triangular_solves.py`;
the solves alone 25-29x slower at 2n = 1602). The choice follows `jax.default_backend()` when the
program is traced: "cpu" takes the solves here, any other backend the library's.

Shapes: `lower` (m, m) (entries above the diagonal are ignored), `rhs` (m, k); batch with
`jax.vmap`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg

# rows per block of the blocked forward substitution (each block solved row by row)
LEAF = 32


def _substitute(lower, rhs, unit_diagonal: bool):
    """Forward substitution, one row per loop step: x_i = (b_i - sum_{j<i} L_ij x_j) / L_ii."""
    m = lower.shape[0]
    strictly_lower = jnp.tril(lower, -1)
    diagonal = None if unit_diagonal else jnp.diagonal(lower)

    def row(i, x):
        # rows j >= i of x are still zero, so the product sums over j < i only
        value = rhs[i] - strictly_lower[i] @ x
        return x.at[i].set(value if unit_diagonal else value / diagonal[i])

    return jax.lax.fori_loop(0, m, row, jnp.zeros_like(rhs))


def uses_library() -> bool:
    """Whether the solves here go to `jax.scipy.linalg.solve_triangular`: on every backend but
    the CPU (see the module docstring)."""
    return jax.default_backend() != "cpu"


def _check_shapes(caller: str, name: str, matrix, rhs, axis: int) -> None:
    """Refuse a non-square triangular matrix, or a right-hand side that is not a matrix whose
    `axis` (0: rows, rhs (m, k); 1: columns, rhs (k, m)) matches it."""
    m = matrix.shape[0] if matrix.ndim else -1
    if matrix.shape != (m, m) or rhs.ndim != 2 or rhs.shape[axis] != m:
        wanted = "rhs (m, k)" if axis == 0 else "rhs (k, m)"
        raise ValueError(f"{caller} needs {name} (m, m) and {wanted}; got {name} "
                         f"{matrix.shape} and rhs {rhs.shape}")


def solve_lower(lower, rhs, unit_diagonal: bool = False, leaf: int = LEAF):
    """x (m, k) with lower @ x = rhs for lower-triangular `lower` (m, m) and `rhs` (m, k)
    (entries above the diagonal are ignored). unit_diagonal: take L_ii = 1 (the stored diagonal
    is not read). On the CPU `blocked_solve_lower` (`leaf` rows per block), elsewhere the
    library's solve (`uses_library`)."""
    _check_shapes("solve_lower", "lower", lower, rhs, 0)
    if uses_library():
        return jax.scipy.linalg.solve_triangular(lower, rhs, lower=True,
                                                 unit_diagonal=unit_diagonal)
    return blocked_solve_lower(lower, rhs, unit_diagonal, leaf)


def blocked_solve_lower(lower, rhs, unit_diagonal: bool = False, leaf: int = LEAF):
    """x (m, k) with lower @ x = rhs for lower-triangular `lower` (m, m) and `rhs` (m, k).

    Blocked forward substitution: one `lax.scan` over blocks of `leaf` rows, x_J = L_JJ^{-1}
    (b_J - L_J,: x) with the rows of x not yet solved still zero (one matrix product per block),
    L_JJ solved row by row. One compiled loop body whatever m is (a recursive split compiles a
    program per level and leaf: 2.5 s more XLA compilation for the DMFT iteration at n = 127).
    unit_diagonal: take L_ii = 1 (the stored diagonal is not read)."""
    _check_shapes("blocked_solve_lower", "lower", lower, rhs, 0)
    m = lower.shape[0]
    block = max(int(leaf), 1)
    if m <= block:
        return _substitute(lower, rhs, unit_diagonal)
    padded = -m % block
    # padded rows: identity on the diagonal, zero right-hand side, so their x is zero
    lower = jnp.pad(lower, ((0, padded), (0, padded)))
    lower = lower + jnp.diag((jnp.arange(m + padded) >= m).astype(lower.dtype))
    rhs = jnp.pad(rhs, ((0, padded), (0, 0)))

    def solve_block(x, start):
        rows = jax.lax.dynamic_slice_in_dim(lower, start, block, 0)              # (b, m)
        diagonal = jax.lax.dynamic_slice_in_dim(rows, start, block, 1)            # (b, b)
        right = jax.lax.dynamic_slice_in_dim(rhs, start, block, 0) - rows @ x     # (b, k)
        return jax.lax.dynamic_update_slice_in_dim(
            x, _substitute(diagonal, right, unit_diagonal), start, 0), None

    x, _ = jax.lax.scan(solve_block, jnp.zeros_like(rhs), jnp.arange(0, m + padded, block))
    return x[:m]


def solve_upper(upper, rhs, unit_diagonal: bool = False, leaf: int = LEAF):
    """x (m, k) with upper @ x = rhs for upper-triangular `upper` (m, m): the lower-triangular
    system with rows and columns in reverse order."""
    _check_shapes("solve_upper", "upper", upper, rhs, 0)
    return solve_lower(upper[::-1, ::-1], rhs[::-1], unit_diagonal, leaf)[::-1]


def right_divide(rhs, lower, unit_diagonal: bool = False, leaf: int = LEAF):
    """rhs @ lower^{-1} (k, m) for lower-triangular `lower` (m, m) and `rhs` (k, m)."""
    _check_shapes("right_divide", "lower", lower, rhs, 1)
    return solve_upper(lower.T, rhs.T, unit_diagonal, leaf).T
