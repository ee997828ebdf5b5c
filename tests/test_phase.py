"""`lazyrich phase grokking` end to end at a tiny size, and its refusals before any work."""

import importlib.util

import numpy as np
import pytest

import lazyrich
from lazyrich.views.cli import main

TINY = ["grokking", "--alpha", "0.5", "1", "--eps", "0.05", "0.1", "--P_over_D", "8", "--seed", "0",
        "--D", "10", "--steps", "100", "--log_every", "10", "--no-progress"]
# the mean-field solve takes ~20 s at this size on 2 cores (its compilation), and `network`
# is `infinite`'s code path with N and dynamics changed: both slow
METHODS = ["infinite", pytest.param("network", marks=pytest.mark.slow)] + (
    [pytest.param("mean_field", marks=pytest.mark.slow)]
    if importlib.util.find_spec("dmft.mean_field") else [])


@pytest.mark.parametrize("method", METHODS)
def test_phase_end_to_end(tmp_path, method, capsys):
    """The file holds half times, delay, closed form and their ratio on (alpha, eps, seed);
    the ratio is the seed mean over the closed form, and the figure is drawn from the file."""
    out, figure = tmp_path / "phase.nc", tmp_path / "phase.png"
    assert main(["phase", *TINY, "--method", method, "--out", str(out),
                 "--figure", str(figure)]) == 0
    assert "wrote" in capsys.readouterr().out
    ds = lazyrich.load(str(out))
    assert ds.t_half_test.dims == ("alpha", "eps", "seed")
    assert ds.attrs["method"] == method
    ratio = ds.t_half_test.mean("seed") / ds.theory_t_half_test
    np.testing.assert_allclose(ds.ratio.values, ratio.transpose(*ds.ratio.dims).values)
    from dmft.grokking_scaling import train_half_time
    theory_train = train_half_time(ds.alpha.values[:, None], ds.eps.values[None], 8, 10)
    np.testing.assert_allclose(ds.theory_t_half_train.transpose("alpha", "eps"), theory_train)
    np.testing.assert_allclose(ds.theory_delay, ds.theory_t_half_test - ds.theory_t_half_train)
    assert np.all(np.isfinite(ds.t_half_test.sel(alpha=0.5)))
    assert figure.stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["--alpha", "1", "--P_over_D", "5", "8"], "--alpha needs at least 2"),
    (["--alpha", "1", "2"], "exactly one of --P_over_D and --eps"),
    (["--alpha", "1", "2", "--P_over_D", "5", "8", "--eps", "0.1", "0.2"], "exactly one"),
    (["--alpha", "1", "2", "--P_over_D", "0.5", "8"], "--P_over_D must be > 1"),
    (["--alpha", "1", "2", "--eps", "0.1", "0.2", "--steps", "15"], "multiple of --log_every"),
    (["--alpha", "1", "2", "--eps", "0.1", "0.2", "--bogus", "3"], "bogus"),
    (["--alpha", "1", "2", "--eps", "0.1", "0.2", "--dmft", "--theory-points", "9"],
     "--theory-points must be at least"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "phase.nc"
    assert main(["phase", "grokking", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_phase_digits_delay_vs_scale(tmp_path):
    """`lazyrich phase digits`: half times of the train / test error rates and their delay on
    the scale axis, equal to grokking_times of 1 - accuracy of the same sweep."""
    from lazyrich.measures.grokking_times import grokking_times

    out, figure = tmp_path / "d.nc", tmp_path / "d.png"
    small = ["--seed", "0", "--width", "16", "--n_train", "60", "--n_test", "60", "--steps",
             "200", "--log_every", "10", "--no-progress"]
    assert main(["phase", "digits", "--output_scale", "1", "3", *small, "--out", str(out),
                 "--figure", str(figure)]) == 0
    ds = lazyrich.load(str(out))
    assert ds.t_half_test.dims == ("output_scale",) and ds.attrs["axis"] == "output_scale"
    sim = lazyrich.sweep("digits", output_scale=[1.0, 3.0], seed=0, width=16, n_train=60,
                         n_test=60, steps=200, log_every=10, progress=False)
    errors = (1 - sim[["train_accuracy", "test_accuracy"]]).rename(
        train_accuracy="train_error", test_accuracy="test_error")
    expected = grokking_times(errors, train="train_error", test="test_error")
    np.testing.assert_allclose(ds.delay.values, expected.delay.values)
    assert figure.stat().st_size > 5_000


@pytest.mark.parametrize("argv, message", [
    (["teacher", "--lr", "0.5", "1.5"], "train/test accuracy"),
    (["digits", "--output_scale", "1", "--seed", "0", "1"], "exactly one scale axis"),
])
def test_phase_beyond_the_toy_refuses_bad_axes(tmp_path, capsys, argv, message):
    out = tmp_path / "d.nc"
    assert main(["phase", *argv, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_dmft_half_times_follow_each_alphas_grid():
    """The DMFT column's half times are the phase metric on the DMFT's own curves: a rich
    alpha (its own, finer grid) and a lazier one, against `dmft.grokking.solve` called directly
    on the grid `dmft_grid(alpha=)` chooses. ~15 s on 2 cores (two small solves)."""
    from dmft.grokking import solve
    from lazyrich.measures.grokking_times import grokking_times
    from lazyrich.views.theory import dmft_grid, dmft_half_times

    scalars = {"steps": 400, "lr_scale": 1.0, "D": 10, "P": 50, "eps": 0.1}
    times = dmft_half_times(scalars, [0.05, 1.0], 1.0, max_points=61, n_samples=64,
                            progress=False)
    assert list(times.alpha.values) == [0.05, 1.0]
    grid = dmft_grid(scalars, 61, alpha=0.05)
    assert grid.dt < dmft_grid(scalars, 61, alpha=1.0).dt
    direct = solve(0.05, 0.1, 5.0, 1.0, D=10, times=grid.times, scheme=grid.scheme,
                   target_scale=1.0, tol=1e-5, progress=False, n_samples=64,
                   n_response=32).isel(eps=0, target_scale=0)
    expected = grokking_times(direct.isel(alpha=0), floor=0.0)
    assert np.isfinite(times.t_half_test.sel(alpha=0.05))
    np.testing.assert_allclose(times.t_half_test.sel(alpha=0.05), expected.t_half_test)
    np.testing.assert_allclose(times.delay.sel(alpha=0.05), expected.delay)


@pytest.mark.slow
def test_phase_with_the_dmft_column(tmp_path):
    """`--dmft` adds the DMFT's half times and the simulation / DMFT ratio, drawn in the figure
    (25 s on 2 quiet cores)."""
    out, figure = tmp_path / "phase.nc", tmp_path / "phase.png"
    assert main(["phase", "grokking", "--alpha", "0.5", "2", "--P_over_D", "5", "8", "--seed",
                 "0", "1", "--D", "12", "--steps", "400", "--log_every", "10", "--dmft",
                 "--theory-points", "80", "--no-progress", "--out", str(out),
                 "--figure", str(figure)]) == 0
    ds = lazyrich.load(str(out))
    assert {"dmft_t_half_test", "dmft_delay", "dmft_ratio"} <= set(ds.data_vars)
    ratio = ds.t_half_test.mean("seed") / ds.dmft_t_half_test
    np.testing.assert_allclose(ds.dmft_ratio.values, ratio.transpose(*ds.dmft_ratio.dims).values)
    assert np.all(np.isfinite(ds.dmft_t_half_test.sel(alpha=0.5)))
    assert 0.7 < float(ds.dmft_ratio.sel(alpha=0.5).mean()) < 1.5
    assert figure.stat().st_size > 10_000
