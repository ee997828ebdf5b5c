"""Grokking phenomenology at a small size (Kumar et al. 2023, Fig. 3): the output scale alpha
delays generalisation relative to fitting the training set.

Calibrated size: D=40, N=200, P=200 (P/D = 5), eps=0.02, lr_scale=0.5, 16,000 steps, two seeds.
"""

import numpy as np
import pytest

import lazyrich

SIZE = {"D": 40, "N": 200, "P": 200, "n_test": 500, "eps": 0.02, "lr_scale": 0.5,
        "steps": 16_000, "log_every": 100}


def _first_step_below(curve, fraction):
    """First logged step where the curve is <= fraction * its first value (inf if never)."""
    below = np.nonzero(curve.values <= fraction * curve.values[0])[0]
    return curve.step.values[below[0]] if len(below) else np.inf


@pytest.fixture(scope="module")
def alpha_sweep():
    return lazyrich.sweep("grokking", alpha=[0.25, 0.5, 1.0, 8.0], seed=[0, 1], progress=False,
                          **SIZE).mean("seed")


def test_delay_between_train_and_test_grows_with_alpha(alpha_sweep):
    """Steps from train loss reaching 10% of its start to test loss doing so grow with alpha."""
    delays = []
    for alpha in (0.25, 0.5, 1.0):
        run = alpha_sweep.sel(alpha=alpha)
        train, test = _first_step_below(run.train_loss, 0.1), _first_step_below(run.test_loss, 0.1)
        assert np.isfinite(train) and np.isfinite(test), (alpha, train, test)
        delays.append(test - train)
    assert delays[0] < delays[1] < delays[2], delays


def test_largest_alpha_stays_lazy_within_the_run(alpha_sweep):
    """At alpha=8 the training set is fitted but the test loss stays far above it: > 3x the
    train loss at the end and above 20% of its initial value."""
    lazy = alpha_sweep.sel(alpha=8.0)
    final = lazy.isel(step=-1)
    assert float(final.test_loss) > 3 * float(final.train_loss)
    assert float(final.test_loss) > 0.2 * float(lazy.test_loss.isel(step=0))
    rich = alpha_sweep.sel(alpha=0.25).isel(step=-1)
    assert float(rich.test_loss) < 0.05 * float(lazy.test_loss.isel(step=0))
    assert float(rich.alignment) > float(final.alignment)
    assert float(rich.param_movement) > float(final.param_movement)
