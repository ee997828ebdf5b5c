"""The logged step-0 values are the metrics of the initial state, computed eagerly.

jaxlib 0.10's CPU "ynn" fusion of a dot with a broadcast constant zero, a multiply and a sum
returns garbage (inf, NaN or ~1e37 instead of 0). A state whose deviation starts at zero, with
the metrics taken inside the same jit as the initialisation, hit it in `dmft.grokking_grid`
(every run's first train loss was inf at D = 100), which now puts an optimization barrier
between the two; the grid test fails without it (two float64 runs at D = 100, P = 800; the
garbage depends on how XLA fuses the program, so other sizes may pass by luck). The engine's
program is not fused that way, and a barrier there would cost the exact zero of the network's
centred output at step 0 (f and f_0 then come from different kernels, 1 float32 ulp apart):
its test is a guard that would catch the same failure.
"""

import jax
import numpy as np

import lazyrich
from dmft.grokking_grid import simulate_runs
from lazyrich.experiments import grokking as experiment


def _eager_initial_metrics(D: int, P: int, seed: int) -> dict:
    params = {name: p.default for name, p in experiment.PARAMETERS.items()}
    params.update(D=D, P=P, N=1, n_test=8, dynamics="infinite", alpha=1.0, eps=0.02)
    return experiment.metrics(experiment.init(jax.random.key(seed), params), params)


def test_grid_first_record_equals_the_eager_metrics(x64):
    """Two runs, float64, as `python -m dmft.grokking_grid` compiles them (this one was inf)."""
    out = simulate_runs(100, 800, np.array([1.0, 1.0]), np.array([0.02, 0.02]),
                        np.array([5.0, 5.0]), np.array([8, 0]), steps=100, log_every=50)
    for i, seed in enumerate((8, 0)):
        eager = _eager_initial_metrics(100, 800, seed)
        for name in ("train_loss", "test_loss_population"):
            assert np.isfinite(out[name][i, 0])
            np.testing.assert_allclose(out[name][i, 0], float(eager[name]), rtol=1e-9)


def test_engine_step_zero_equals_the_eager_metrics(x64):
    ds = lazyrich.sweep("grokking", dynamics="infinite", D=100, P=800, N=1, n_test=8,
                        alpha=1.0, eps=0.02, seed=[8, 9], steps=10, log_every=10,
                        progress=False)
    for i, seed in enumerate((8, 9)):
        eager = _eager_initial_metrics(100, 800, seed)
        for name in ("train_loss", "test_loss_population"):
            np.testing.assert_allclose(ds[name].isel(seed=i, step=0).item(),
                                       float(eager[name]), rtol=1e-9)
