"""The matmul precision switch: wired into the compiled chunk programs, recorded, kept apart in
stores, and its effect on the curves bounded (reduced precision emulated on the CPU by rounding
each product's operands, `lazyrich.core.precision`).

Stated tolerances (grokking, D=20, N=48, P=64, 400 steps, alpha in {0.5, 4}): the train and
test loss curves under TF32 products stay within 2e-3 relative of float32's, under bfloat16
within 3e-2 (measured: 4.5e-4 and 7e-3 at 2,000 steps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazyrich
from lazyrich.core import chunks
from lazyrich.core.grid import make_grid
from lazyrich.core.precision import emulate_matmul_precision, round_mantissa

SMALL = dict(D=16, N=48, P=64, n_test=100, steps=400, log_every=100, eps=0.05, lr_scale=0.5,
             dynamics="network")
ALPHAS = [0.5, 4.0]


def _program_text(precision: str) -> str:
    grid = make_grid(lazyrich.get_experiment("grokking"),
                     {"alpha": [1.0], **SMALL, "steps": 10, "log_every": 5})
    (_, static), = grid.static_points()
    program = chunks.program_for(grid, grid.batched_columns(), tuple(sorted(static.items())),
                                 None, 1, (), precision)
    return program.as_text().lower()


def test_precision_reaches_the_compiled_program():
    texts = {p: _program_text(p) for p in ("float32", "bfloat16")}
    assert "highest" in texts["float32"]
    assert texts["float32"] != texts["bfloat16"]


def test_precision_is_recorded_and_validated(tmp_path):
    ds = lazyrich.sweep("grokking", alpha=[1.0], progress=False, matmul_precision="bfloat16",
                        store=str(tmp_path / "store"), **{**SMALL, "steps": 20, "log_every": 10})
    assert ds.attrs["matmul_precision"] == "bfloat16"
    with pytest.raises(ValueError, match="matmul_precision"):
        lazyrich.sweep("grokking", alpha=[1.0], progress=False, store=str(tmp_path / "store"),
                       **{**SMALL, "steps": 20, "log_every": 10})
    with pytest.raises(ValueError, match=r"matmul_precision='fp8' is not one of"):
        lazyrich.sweep("grokking", alpha=[1.0], matmul_precision="fp8", **SMALL)


def test_round_mantissa_matches_bfloat16_cast():
    x = jax.random.normal(jax.random.key(0), (10_000,), jnp.float32) * 37.0
    np.testing.assert_array_equal(round_mantissa(x, 7),
                                  x.astype(jnp.bfloat16).astype(jnp.float32))
    assert jnp.all(round_mantissa(x, 23) == x)
    tf32 = round_mantissa(x, 10)
    assert float(jnp.max(jnp.abs(tf32 - x) / jnp.abs(x))) <= 2.0**-11


def _emulated_curves(precision: str) -> dict[str, np.ndarray]:
    experiment = lazyrich.get_experiment("grokking")
    params = experiment.defaults(**SMALL)
    static = {k: v for k, v in params.items() if experiment.parameters[k].static}
    run_one = chunks.make_run_one(experiment, static)
    batched = {}
    for name, value in params.items():
        spec = experiment.parameters[name]
        if spec.static:
            continue
        values = ALPHAS if name == "alpha" else [value] * len(ALPHAS)
        batched[name] = jnp.asarray(values, jnp.result_type(float) if spec.kind == "float"
                                    else jnp.int32)
    curves, _, _, _ = jax.jit(jax.vmap(emulate_matmul_precision(run_one, precision)))(batched)
    return {k: np.asarray(curves[k]) for k in ("train_loss", "test_loss")}


def test_reduced_precision_curves_stay_within_tolerance():
    ds = lazyrich.sweep("grokking", alpha=ALPHAS, progress=False, **SMALL)
    exact = _emulated_curves("float32")
    for name in exact:  # the emulator itself changes nothing at float32
        np.testing.assert_allclose(exact[name], ds[name].values, rtol=1e-6)
    for precision, tolerance in (("tensorfloat32", 2e-3), ("bfloat16", 3e-2)):
        reduced = _emulated_curves(precision)
        for name in exact:
            error = np.max(np.abs(reduced[name] - exact[name]) / np.abs(exact[name]))
            assert 1e-7 < error < tolerance, (precision, name, error)
