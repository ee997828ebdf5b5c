"""Reduced-precision matrix products, emulated on any backend (a CPU included).

GPUs and TPUs can compute float32 products from operands rounded to TF32 (10 mantissa bits) or
bfloat16 (7 bits), summing in float32 (`sweep(matmul_precision=...)`). CPUs compute full
float32 whatever the setting, so the effect of the reduced precision on a sweep's curves cannot be
seen there directly. `emulate_matmul_precision(fun, name)` rewrites `fun` so every `dot_general`
(matmuls, einsums, the products inside gradients) first rounds its float32 operands to the
precision's mantissa, then multiplies in full float32: the arithmetic of the accelerator's
reduced-precision units, up to summation order. It walks the jaxpr, nested programs (jit, scan,
while, cond, custom derivatives) included, so a whole compiled sweep chunk can be emulated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend import core as jex_core

from lazyrich.core.devices import MANTISSA_BITS, check_matmul_precision

FLOAT32_MANTISSA_BITS = 23


def round_mantissa(x: jax.Array, bits: int) -> jax.Array:
    """float32 `x` rounded to nearest (ties to even) with `bits` mantissa bits; other dtypes and
    bits >= 23 are returned unchanged. Same shape and dtype as `x`."""
    if x.dtype != jnp.float32 or bits >= FLOAT32_MANTISSA_BITS:
        return x
    shift = FLOAT32_MANTISSA_BITS - bits
    raw = lax.bitcast_convert_type(x, jnp.uint32)
    kept_lsb = (raw >> shift) & jnp.uint32(1)
    rounded = (raw + jnp.uint32((1 << (shift - 1)) - 1) + kept_lsb) & jnp.uint32(
        ~((1 << shift) - 1) & 0xFFFFFFFF)
    finite = jnp.isfinite(x)
    return jnp.where(finite, lax.bitcast_convert_type(rounded, jnp.float32), x)


def _rewrite_param(value: Any, bits: int) -> Any:
    if isinstance(value, jex_core.ClosedJaxpr):
        return _rewrite_closed(value, bits)
    if isinstance(value, tuple) and value and all(isinstance(v, jex_core.ClosedJaxpr)
                                                  for v in value):
        return tuple(_rewrite_closed(v, bits) for v in value)
    if isinstance(value, jex_core.Jaxpr):
        raise TypeError("emulate_matmul_precision: a primitive carries an open Jaxpr parameter, "
                        "which cannot be rewritten; emulate a function without it")
    return value


def _rewrite_closed(closed: jex_core.ClosedJaxpr, bits: int) -> jex_core.ClosedJaxpr:
    avals = [jax.ShapeDtypeStruct(v.aval.shape, v.aval.dtype) for v in closed.jaxpr.invars]

    def evaluate(*args):
        return _evaluate(closed.jaxpr, closed.consts, args, bits)

    rewritten = jax.make_jaxpr(evaluate)(*avals)
    if len(rewritten.jaxpr.outvars) != len(closed.jaxpr.outvars):
        raise AssertionError("emulation changed a nested program's outputs")
    return rewritten


def _evaluate(jaxpr, consts, args, bits: int) -> list:
    env: dict = {}

    def read(var):
        return var.val if isinstance(var, jex_core.Literal) else env[var]

    env.update(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))
    for eqn in jaxpr.eqns:
        values = [read(v) for v in eqn.invars]
        params = dict(eqn.params)
        if eqn.primitive.name == "dot_general":
            values = [round_mantissa(jnp.asarray(v), bits) for v in values]
            params["precision"] = (lax.Precision.HIGHEST, lax.Precision.HIGHEST)
        else:
            params = {k: _rewrite_param(v, bits) for k, v in params.items()}
        out = eqn.primitive.bind(*values, **params)
        outs = out if eqn.primitive.multiple_results else [out]
        env.update(zip(eqn.outvars, outs, strict=True))
    return [read(v) for v in jaxpr.outvars]


def emulate_matmul_precision(fun: Callable, precision: str) -> Callable:
    """`fun` with every matrix product computed as `precision` computes it on an accelerator.

    Args:
        fun: a JAX-traceable function of arrays (pytrees in, pytrees out).
        precision: "float32" (unchanged arithmetic), "tensorfloat32" or "bfloat16"
            (`lazyrich.core.devices.MATMUL_PRECISIONS`).

    Returns:
        A function with `fun`'s signature and output structure; jit it as usual.
    """
    bits = MANTISSA_BITS[check_matmul_precision(precision)]

    def emulated(*args):
        closed, shape = jax.make_jaxpr(fun, return_shape=True)(*args)
        flat = jax.tree_util.tree_leaves(args)
        outs = _evaluate(closed.jaxpr, closed.consts, flat, bits)
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(shape), outs)

    return emulated
