"""Several Monte Carlo draws in one grokking DMFT solve (`seed=[...]`): each draw is the solve of
its seed alone, their spread is measured and warned about, bad seed lists are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from dmft import ConvergenceWarning, grokking
from dmft.grokking_statistics import check_spread, seed_spread

# D = 20, P/D = 3, eps = 0.1 over 8 D: at M = 64 alpha = 1's draws 0 and 3 land on different
# branches (draw 3 starts to run away: train loss 1.18 at the end against 0.08)
_SMALL = dict(D=20, t_max=160.0, n_samples=64, n_response=8, tol=1e-6, max_iter=400,
              progress=False)


def test_each_draw_of_a_seed_list_is_the_solve_of_that_seed_and_disagreement_warns():
    with pytest.warns(ConvergenceWarning, match=r"seed=\[0, 3\] disagree.*n_samples=64"):
        both = grokking.solve([1.0, 2.0], 0.1, 3.0, 1.0, seed=[0, 3], **_SMALL)
    assert both.test_loss.dims == ("alpha", "eps", "target_scale", "mc_seed", "time")
    assert list(both.mc_seed.values) == [0, 3]
    # draw-major batching: each alpha of draw 3 is draw 3's, not another point's
    alone = grokking.solve([1.0, 2.0], 0.1, 3.0, 1.0, seed=3, **_SMALL)
    assert "mc_seed" not in alone.dims and "mc_spread" not in alone.attrs
    # the batched solve iterates until both draws settle: equal to the tolerance's scale
    for name in ("train_loss", "test_loss", "frob_M", "v_norm2"):
        np.testing.assert_allclose(both[name].sel(mc_seed=3).values, alone[name].values,
                                   rtol=1e-4, atol=1e-7, err_msg=name)
    spread = seed_spread(both.time.values, both.train_loss.values, both.test_loss.values)
    assert both.attrs["mc_spread"] == pytest.approx(float(spread.max()))
    assert both.attrs["mc_spread"] > 0.5                  # a runaway, not Monte Carlo noise


def _steps(time, drops):
    """A loss curve 1 -> 0 that falls linearly between the times `drops` = (start, end)."""
    return np.clip((drops[1] - time) / (drops[1] - drops[0]), 0.0, 1.0)


def test_seed_spread_is_the_largest_relative_deviation_of_the_grokking_times():
    """Draws whose curves fall linearly over known intervals: the train half-drop at 15 and
    17 (spread 1 / 16), the test curve's (grokking and half drop alike) at 40 and 60 (10 / 50)."""
    time = np.linspace(0.0, 100.0, 1001)
    train = np.stack([_steps(time, (10, 20)), _steps(time, (12, 22))])
    test = np.stack([_steps(time, (30, 50)), _steps(time, (50, 70))])
    assert seed_spread(time, train, test)[()] == pytest.approx(0.2, rel=1e-9)
    assert seed_spread(time, train, test[::-1])[()] == pytest.approx(0.2, rel=1e-9)
    same = np.stack([test[0], test[0]])
    assert seed_spread(time, np.stack([train[0]] * 2), same)[()] == 0.0
    stuck = np.stack([test[0], np.ones_like(time) + time / 1e3])   # never groks: inf
    assert seed_spread(time, train, stuck)[()] == np.inf
    batched = seed_spread(time, np.stack([train, train]), np.stack([test, same]))
    np.testing.assert_allclose(batched, [0.2, 1 / 16])           # batched: one per point
    with pytest.raises(ValueError, match=r"S >= 2 draws; got shapes \(1, 5\)"):
        seed_spread(np.arange(5.0), np.ones((1, 5)), np.ones((1, 5)))
    with pytest.raises(ValueError, match=r"time must be \(5,\)"):
        seed_spread(np.arange(4.0), np.ones((2, 5)), np.ones((2, 5)))


def test_only_draws_that_disagree_beyond_the_tolerance_warn():
    """Draws 6% apart (2.9% from their mean) in every time pass silently (the well-behaved
    cells measured 1.8-4.6%); 20% from their mean warn, naming the seeds and n_samples."""
    time = np.linspace(0.0, 100.0, 1001)

    def stats(shift):
        return {"train_loss": np.stack([_steps(time, (10, 20)), _steps(time, (10 * shift,
                                                                                20 * shift))]),
                "test_loss": np.stack([_steps(time, (30, 50)), _steps(time, (30 * shift,
                                                                              50 * shift))])}

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        close = check_spread(time, stats(1.06), [0, 1], 500)
    assert close == pytest.approx(0.06 / 2.06, rel=1e-3) and close < grokking.MC_SPREAD_TOLERANCE
    with pytest.warns(ConvergenceWarning, match=r"seed=\[4, 7\] disagree.*lies 20.0% from"
                                                r".*n_samples=300"):
        far = check_spread(time, stats(1.5), [4, 7], 300)
    assert far == pytest.approx(0.2, rel=1e-3)
    # one draw drops within the run and the other never does: said in words, not as "inf%"
    with pytest.warns(ConvergenceWarning, match=r"makes a drop within the run .* never makes"):
        assert check_spread(time, stats(20.0), [0, 1], 300) == np.inf
    assert np.isnan(check_spread(time, stats(1.0), [0], 500))


@pytest.mark.parametrize("seed, message", [
    ([], r"non-empty sequence of distinct"),
    ([1, 1], r"non-empty sequence of distinct"),
    ([0, -1], r"seed\[1\]=-1 is out of range"),
    ([0, 1.5], r"seed\[1\]=1.5 has type float"),
])
def test_bad_seed_lists_are_refused_naming_the_argument(seed, message):
    with pytest.raises((ValueError, TypeError), match=message):
        grokking.solve(1.0, 0.1, 3.0, 1.0, seed=seed, **_SMALL)


def test_each_draw_holds_its_own_mixing_matrix_in_the_memory_estimate():
    one = grokking.estimate_cost(2000.0, D=100, n_samples=1000)
    two = grokking.estimate_cost(2000.0, D=100, n_samples=1000, draws=2)
    assert two.memory_bytes == pytest.approx(2 * one.memory_bytes)
    assert two.seconds_per_iteration == pytest.approx(2 * one.seconds_per_iteration)
    with pytest.raises(ValueError, match="draws"):
        grokking.estimate_cost(2000.0, draws=0)


def test_an_agreement_row_of_several_draws_compares_their_mean_and_reports_their_spread(
        monkeypatch):
    """The benchmark's plumbing, with the solve replaced by draws of known curves (the real
    solve's draws are tested above): the row compares the draws' mean and prints their spread."""
    from dmft import grokking_agreement
    from dmft.grokking_agreement import agreement, format_rows

    def draws(alpha, eps, lam, lr_scale, *, times, seed, **settings):
        seeds = seed if isinstance(seed, list) else [seed]
        lag = np.array([1.0, 1.2])[seeds][:, None]         # draw 1's curves 20% later
        curves = {"train_loss": 3 * np.exp(-times[None] / (5 * lag)),
                  "test_loss": 3 * np.exp(-times[None] / (50 * lag))}
        dims = ("alpha", "eps", "target_scale", "mc_seed", "time")
        ds = xr.Dataset({k: (dims, v[None, None, None]) for k, v in curves.items()},
                        coords={"alpha": [alpha], "eps": [eps], "target_scale": [1.0],
                                "mc_seed": seeds, "time": times},
                        attrs={"iterations": 3, "converged": 1})
        if isinstance(seed, list):
            return ds.assign_attrs(mc_spread=0.25)
        return ds.isel(mc_seed=0)

    monkeypatch.setattr(grokking_agreement.grokking, "solve", draws)
    (row,) = agreement(20, [8.0], 0.1, 3.0, 2, "mean", "adaptive", horizon=6, seed=[0, 1])
    (first,) = agreement(20, [8.0], 0.1, 3.0, 2, "mean", "adaptive", horizon=6, seed=0)
    assert row["mc_spread"] == 0.25 and np.isnan(first["mc_spread"])
    # the rows share the simulation: their test half times relate as the mean curve's to draw
    # 0's, on the simulation's log grid (every 10 steps of lr_scale = D / 20 = 1)
    t = np.arange(0.0, 121.0, 10.0)
    mean = grokking_agreement.half_drop_time(t, 1.5 * (np.exp(-t / 50) + np.exp(-t / 60)))
    alone = grokking_agreement.half_drop_time(t, 3 * np.exp(-t / 50))
    assert (1 + row["test_half"]) / (1 + first["test_half"]) == pytest.approx(mean / alone,
                                                                               rel=0.02)
    assert mean / alone > 1.05                                  # the mean is not draw 0
    assert f"MC spread {row['mc_spread']:.1%}" in format_rows(20, 0.1, 3.0, [row])
    assert "MC spread" not in format_rows(20, 0.1, 3.0, [first])
