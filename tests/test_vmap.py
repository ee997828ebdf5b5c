"""A run inside a sweep equals the same run alone, whatever shares its batch or chunk."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY

import lazyrich

CURVES = ["train_loss", "test_loss", "test_loss_population", "alignment", "param_movement"]


def _assert_same_run(ds_sweep, ds_alone, point, rtol):
    for var in CURVES:
        swept = ds_sweep[var].sel(point).values
        alone = ds_alone[var].squeeze(drop=True).values
        np.testing.assert_allclose(swept, alone, rtol=rtol, atol=rtol * np.abs(alone).max(),
                                   err_msg=var)


@pytest.mark.parametrize("dynamics", ["network", "moments"])
def test_batched_run_equals_single_run_float32(dynamics):
    """float32: every (alpha, seed) of a 3 x 3 grid equals the run alone to 1e-6 relative."""
    ds = lazyrich.sweep("grokking", alpha=[0.5, 1.0, 4.0], seed=[0, 1, 2], dynamics=dynamics,
                        progress=False, **TINY)
    assert ds["train_loss"].dtype == np.float32
    for alpha, seed in [(1.0, 2), (4.0, 0)]:
        alone = lazyrich.sweep("grokking", alpha=alpha, seed=seed, dynamics=dynamics,
                               progress=False, **TINY)
        _assert_same_run(ds, alone, {"alpha": alpha, "seed": seed}, rtol=1e-6)


@pytest.mark.parametrize("options", [{"chunk_size": 4}, {"vmap_size": 2},
                                     {"chunk_size": 5, "vmap_size": 3}])
def test_chunking_grouping_and_padding_do_not_change_results(options):
    """Chunks of 4 (last one padded), vmap groups of 2 inside a lax.map, or both, give the same
    numbers as one vmapped chunk of 9."""
    grid = {"alpha": [0.5, 1.0, 4.0], "seed": [0, 1, 2]}
    whole = lazyrich.sweep("grokking", chunk_size=9, vmap_size=9, progress=False, **grid, **TINY)
    split = lazyrich.sweep("grokking", progress=False, **options, **grid, **TINY)
    for var in CURVES:
        np.testing.assert_allclose(split[var].values, whole[var].values, rtol=1e-6,
                                   atol=1e-6 * float(np.abs(whole[var]).max()), err_msg=var)


def test_batched_run_equals_single_run_float64(x64):
    """float64 (jax_enable_x64): results are float64 and a run in a sweep equals it alone
    to 1e-12 relative."""
    assert jnp.result_type(float) == jnp.float64
    ds = lazyrich.sweep("grokking", alpha=[0.5, 2.0], seed=[3, 4], progress=False, **TINY)
    assert ds["test_loss"].dtype == np.float64
    alone = lazyrich.sweep("grokking", alpha=2.0, seed=3, progress=False, **TINY)
    _assert_same_run(ds, alone, {"alpha": 2.0, "seed": 3}, rtol=1e-12)


def test_static_axis_loops_over_compilations():
    """A static axis (N) next to a batched one gives each run its own shape, same as alone."""
    ds = lazyrich.sweep("grokking", N=[16, 32], alpha=[1.0, 2.0], progress=False,
                        **{k: v for k, v in TINY.items() if k != "N"})
    assert ds["train_loss"].dims == ("N", "alpha", "step")
    alone = lazyrich.sweep("grokking", N=16, alpha=2.0, progress=False,
                           **{k: v for k, v in TINY.items() if k != "N"})
    _assert_same_run(ds, alone, {"N": 16, "alpha": 2.0}, rtol=1e-6)
