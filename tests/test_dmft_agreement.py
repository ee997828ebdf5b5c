"""The grokking DMFT against the N -> infinity simulation over the issue-14 grid
(dmft/grokking_agreement.py), and the curve times it reads (dmft/grokking_timing.py)."""

import numpy as np
import pytest

from dmft.grokking_agreement import agreement
from dmft.grokking_timing import crossing_time, delay, grokking_time, half_drop_time


def test_curve_times_on_closed_forms():
    """Closed forms: the half drop of 2 exp(-t) (sampled every 0.1) is at ln 2 (linear
    interpolation error < 0.005), a plateau-then-drop sigmoid groks where it reaches half its
    maximum, and the delay between two shifted sigmoids is the shift."""
    t = np.arange(0, 20, 0.5)
    fine = np.arange(0, 20, 0.1)
    assert half_drop_time(fine, 2 * np.exp(-fine)) == pytest.approx(np.log(2), abs=0.005)
    late = 3 - 2.5 / (1 + np.exp(-(t - 10)))
    assert grokking_time(t, late) == pytest.approx(10 - np.log(2.5 / 1.5 - 1), abs=0.05)
    wide = np.arange(-10, 20, 0.5)
    train, test = 1 / (1 + np.exp(wide - 3)), 1 / (1 + np.exp(wide - 8))
    assert delay(wide, train, test) == pytest.approx(5.0, abs=0.02)
    assert np.isnan(crossing_time(t, np.ones_like(t), 0.5))
    with pytest.raises(ValueError, match="shapes"):
        crossing_time(t, t[:-1], 0.5)


@pytest.mark.slow
def test_agreement_at_D_100():
    """D = 100, eps = 0.02, P/D = 5, 8 seeds, teacher scale matched per seed, M = 1000,
    M_R = 32, rank 16 (`python benchmarks/dmft_agreement.py --dims 100 --eps 0.02 --ratios 5
    --solve n_samples=1000 n_response=32 bulk_rank=16 tol=1e-5`; run on a GPU in this session:
    test L2 10.7 / 10.7 / 9.1 / 5.7%, grokking time -6.6 / -8.3 / -9.7 / -10.9%, delay
    -35.6 / -33.2 / -29.0 / -22.4% for alpha = 0.25, 0.5, 1, 2). Asserts what was measured: the
    curves within 12%, grokking within 12% and early, and the delay too short by 20-40% (the
    open problem of issue 14), its error shrinking as alpha grows. About 1 h on 2 CPU cores."""
    rows = agreement(100, [0.25, 0.5, 1.0, 2.0], 0.02, 5.0, 8, n_samples=1000, n_response=32,
                     bulk_rank=16, tol=1e-5)
    for row in rows:
        assert row["test_l2"] < 0.12
        assert -0.12 < row["grok"] < 0.0
        assert -0.40 < row["delay"] < -0.20
    assert rows[-1]["delay"] > rows[0]["delay"]


def _assert_grid_cell(D, eps, ratio, alphas, horizon, *, test_l2, grok, train_half,
                      test_half, delay):
    """One cell of the grid tables (32 seeds, mean teacher scale, adaptive grids, M = 4000,
    M_R = 64, tol 1e-5): every row converged, its test-loss L2 error below `test_l2`, its
    relative errors inside the (low, high) bounds given (grok=None: the DMFT does not grok in
    the run, its grokking time nan); `delay` holds the bounds for alpha <= 0.5, alpha <= 2
    and larger alpha."""
    rows = agreement(D, alphas, eps, ratio, 32, "mean", "adaptive", horizon,
                     n_samples=4000, n_response=64, tol=1e-5)
    for row in rows:
        print(f"D {D} eps {eps} P/D {ratio} alpha {row['alpha']}: test L2 {row['test_l2']:.1%}, "
              f"grok {row['grok']:+.1%}, train half {row['train_half']:+.1%}, test half "
              f"{row['test_half']:+.1%}, delay {row['delay']:+.1%}")   # shown by pytest -rP
        assert row["converged"] and row["test_l2"] < test_l2, row
        assert (np.isnan(row["grok"]) if grok is None else grok[0] < row["grok"] < grok[1]), row
        assert train_half[0] < row["train_half"] < train_half[1], row
        assert test_half[0] < row["test_half"] < test_half[1], row
        low, high = delay[0] if row["alpha"] <= 0.5 else delay[1] if row["alpha"] <= 2 else delay[2]
        assert low < row["delay"] < high, row


# the rest of the issue-14 grid at D = 100 (dmft/README.md, "The rest of the issue's grid"):
# (eps, P/D, alphas, horizon in units of D)
_GRID_CELLS = [(0.02, 5.0, [0.25, 1.0], 80), (0.02, 5.0, [4.0], 200), (0.02, 3.0, [0.25], 80),
               (0.02, 3.0, [2.0, 4.0], 200), (0.05, 5.0, [0.25, 0.5], 80),
               (0.05, 3.0, [0.5, 1.0, 2.0, 4.0], 80)]


@pytest.mark.slow
@pytest.mark.parametrize("eps, ratio, alphas, horizon", _GRID_CELLS)
def test_the_grid_at_D_100_against_32_seeds(eps, ratio, alphas, horizon):
    """`python benchmarks/dmft_agreement.py --dims 100 --eps E --ratios R --alphas A..
    --seeds 32 --teacher mean --grid adaptive [--horizon 200] --solve n_samples=4000
    n_response=64 tol=1e-5`, the same call; measured on 2 CPU cores (~70 min for all cells; 23 min
    through `pytest -m slow -n 2` with the blocked solves):
    test L2 4.7-7.1%, grokking time -2.6 .. -22.5% (all early; -15 .. -22% at P/D = 3), train
    half +7.1 .. +12.7% (late in every cell), test half -11.0 .. +6.6%, delay -24 .. -31% at
    alpha <= 0.5, -6.5 .. -17.6% at alpha = 1, 2, -3.1 .. +2.9% at alpha = 4. Asserts those
    facts with margins: the curves close, the train loss late, the delay short where the
    alpha is small and right at alpha = 4."""
    _assert_grid_cell(100, eps, ratio, alphas, horizon, test_l2=0.08, grok=(-0.25, 0),
                      train_half=(0.06, 0.14), test_half=(-0.12, 0.08),
                      delay=((-0.33, -0.22), (-0.20, -0.05), (-0.05, 0.05)))


_GRID_CELLS_200 = [(0.02, 5.0, [0.25], 80), (0.02, 5.0, [4.0], 200), (0.02, 3.0, [0.25], 80),
                   (0.02, 3.0, [2.0, 4.0], 300), (0.05, 5.0, [0.25, 0.5], 80),
                   (0.05, 3.0, [0.5, 1.0, 2.0], 80), (0.05, 3.0, [4.0], 160)]


@pytest.mark.slow
@pytest.mark.parametrize("eps, ratio, alphas, horizon", _GRID_CELLS_200)
def test_the_grid_at_D_200_against_32_seeds(eps, ratio, alphas, horizon):
    """The same protocol at D = 200 (`--dims 200`; ~90 min on 2 CPU cores for all cells, 20 of
    them the alpha = 0.25, eps = 0.05 solve on 801 points; 42 min through `pytest -m slow -n 2`
    with the blocked solves): measured test L2 2.3-8.2% (8.2% at
    alpha = 0.25, eps = 0.05), grokking time -9.7 .. +1.3% (P/D = 5 within 1.6%, P/D = 3 6-10%
    early), train half +5.2 .. +13.3%, test half -6.4 .. +7.5%, delay -15.1 .. -23.7% at
    alpha <= 0.5, -5.9 .. +2.6% at alpha = 1, 2, +2.6 .. +6.7% at alpha = 4. Asserts those
    facts with margins. The grokking time's error, and the delay's for alpha <= 2, are smaller
    than in the same cell at D = 100; the train half barely moves."""
    _assert_grid_cell(200, eps, ratio, alphas, horizon, test_l2=0.09, grok=(-0.12, 0.03),
                      train_half=(0.04, 0.15), test_half=(-0.08, 0.08),
                      delay=((-0.26, -0.13), (-0.08, 0.05), (0.0, 0.09)))


# the richest cell over 50 D per D: (D, test L2, grokking time, train half, test half, delay)
_RICHEST_CELL = [(100, 0.14, (-0.27, -0.15), (0.06, 0.14), (-0.25, -0.14), (-0.45, -0.32)),
                 (200, 0.18, (-0.17, -0.06), (0.05, 0.14), (-0.26, -0.15), (-0.50, -0.35)),
                 (400, 0.16, None, (0.0, 0.07), (-0.26, -0.15), (-0.48, -0.34))]


@pytest.mark.slow
@pytest.mark.parametrize("D, test_l2, grok, train_half, test_half, delay", _RICHEST_CELL,
                         ids=[f"D{cell[0]}" for cell in _RICHEST_CELL])
def test_the_richest_P_over_D_3_cell_over_50_D(D, test_l2, grok, train_half, test_half, delay):
    """alpha = 0.25, eps = 0.05, P/D = 3 over 50 D (`--dims D --alphas 0.25 --eps 0.05
    --ratios 3 --horizon 50`; over 80 D the iteration wanders past t ~ 5000 at D = 100).
    Measured (test L2 / grokking time / train half / test half / delay, iterations, time on 2
    CPU cores): D = 100 11.9% / -22.2% / +10.1% / -20.0% / -39.2%, 68 iterations, ~15 min;
    D = 200 15.1% / -11.8% / +9.7% / -20.6% / -42.7%, 135 iterations, 16 min; D = 400 13.0% /
    (the DMFT does not grok in the run; the simulation at 9283) / +3.1% / -20.4% / -41.1%, 167
    iterations, 37 min. Asserts each converges and those errors, with margins: the grid's
    worst cell, and the least converged in M (at D = 100, M = 2000 moves its errors by 11-21
    points) and not self-averaging (other MC seeds give other solutions: the test below); these
    are the rows of MC seed 0."""
    _assert_grid_cell(D, 0.05, 3.0, [0.25], 50, test_l2=test_l2, grok=grok,
                      train_half=train_half, test_half=test_half,
                      delay=(delay, delay, delay))


@pytest.mark.slow
def test_the_richest_cell_depends_on_the_monte_carlo_draw():
    """The richest cell's fixed point is not self-averaging: at D = 100 over 50 D with M = 300
    paths (= P; `--solve n_samples=300 n_response=64 tol=1e-5 max_iter=250 seed=S`), MC seeds
    0 and 2 both converge (56 and 66 iterations, ~3 min each on 2 CPU cores) but measured
    grokking time +3.6 / -11.4%, train half +14.3 / -5.3%, test half -4.1 / -13.9% (seed 1
    converges in 242 iterations to a runaway, test L2 674%; at M = 4000 seeds 0 / 1 / 2 grok
    at -22.2 / +28.5% / not in the run: dmft/README.md). Asserts both converge and that their
    train half times differ by more than 10 points: if this starts failing, the cell has
    become self-averaging and its table row deserves another look."""
    rows = [agreement(100, [0.25], 0.05, 3.0, 32, "mean", "adaptive", 50, n_samples=300,
                      n_response=64, tol=1e-5, max_iter=250, seed=seed)[0] for seed in (0, 2)]
    for row in rows:
        print(f"seed row: grok {row['grok']:+.1%}, train half {row['train_half']:+.1%}, "
              f"test half {row['test_half']:+.1%}, delay {row['delay']:+.1%}")
        assert row["converged"], row
    assert abs(rows[0]["train_half"] - rows[1]["train_half"]) > 0.10, rows


@pytest.mark.slow
def test_the_P_over_D_3_grokking_error_goes_at_D_400():
    """`--dims 400 --eps 0.05 --ratios 3 --alphas 0.5 1` (~65 min on 2 CPU cores): measured
    test L2 3.9 / 1.5%, grokking time -5.6 / -0.6% (-20.7 / -19.7% at D = 100, -9.7 / -6.5% at
    D = 200), train half +5.7 / +4.5%, test half -3.8 / +2.7%, delay -14.6 / +0.2%. Asserts
    them with margins (the grokking time -9% .. +3%, the delay -20% .. -9% at alpha = 0.5 and
    within 5% at alpha = 1)."""
    _assert_grid_cell(400, 0.05, 3.0, [0.5, 1.0], 80, test_l2=0.06, grok=(-0.09, 0.03),
                      train_half=(0.02, 0.09), test_half=(-0.07, 0.06),
                      delay=((-0.20, -0.09), (-0.05, 0.05), (-0.05, 0.05)))


def _small_size_error(monkeypatch=None, drop=None):
    """Relative L2 error of the DMFT's seed-mean test loss against 8 N -> infinity simulations
    at D = 40, P/D = 3, eps = 0.1, alpha = 1, t <= 600 (the test loss rises to its hump and
    falls as the features grow); `drop` names a term zeroed through monkeypatch."""
    import lazyrich
    from dmft import grokking
    from dmft import grokking_paths as paths_
    from dmft.grokking_agreement import teacher_scales

    seeds, D, P = list(range(8)), 40, 120
    sim = lazyrich.sweep("grokking", alpha=1.0, eps=0.1, D=D, P=P, N=1, n_test=10,
                         lr_scale=1.0, steps=600, log_every=10, dynamics="infinite",
                         seed=seeds, progress=False)
    if drop == "A2":
        seed_variance = paths_.spike_seed_variance
        monkeypatch.setattr(paths_, "spike_seed_variance",
                            lambda *args: 0 * seed_variance(*args))
    # solve reuses the iteration compiled for these shapes: a patched term must compile anew,
    # and must not leave its program to later solves
    grokking._compiled_iteration.cache_clear()
    try:
        theory = grokking.solve(1.0, 0.1, 3.0, 1.0, t_max=600.0, D=D,
                                target_scale=teacher_scales(seeds, D, P), n_samples=200,
                                n_response=8, tol=1e-5, progress=False)
    finally:
        grokking._compiled_iteration.cache_clear()
    t = sim.time.values
    simulated = sim.test_loss_population.mean("seed").values
    predicted = theory.test_loss.isel(alpha=0, eps=0).mean("target_scale").interp(time=t).values
    return np.linalg.norm(predicted - simulated) / np.linalg.norm(simulated)


def test_the_dmft_follows_the_simulation_at_a_small_size():
    """Default-suite agreement check that fails when a term of the closure is dropped: D = 40,
    P/D = 3, eps = 0.1, alpha = 1, t <= 600 (the test loss rises to its hump and falls as the
    features grow), 8 N -> infinity simulations against one DMFT solve at their mean teacher
    scale, M = 200, M_R = 8 (~15 s on 2 cores). Measured: 6.4% relative L2 error of the test
    loss. The same solve with a term dropped (`python benchmarks/dmft_diagnosis.py --only
    drops`, monkeypatched as a scratch copy would be): the bulk columns'
    beta_hat components A2 zeroed (G7b) 12.4%, the bulk's share of f (G4) 8085%, the factor
    (1 + eps h / alpha) of the linear force (G5) 8.4%; dropping the (eps / 2 alpha) h^2 term of
    f (6.6%) is below this test's resolution."""
    import lazyrich
    from dmft import grokking
    from dmft.grokking_agreement import teacher_scales

    seeds, D, P = list(range(8)), 40, 120
    sim = lazyrich.sweep("grokking", alpha=1.0, eps=0.1, D=D, P=P, N=1, n_test=10,
                         lr_scale=1.0, steps=600, log_every=10, dynamics="infinite",
                         seed=seeds, progress=False)
    theory = grokking.solve(1.0, 0.1, 3.0, 1.0, t_max=600.0, D=D,
                            target_scale=float(np.mean(teacher_scales(seeds, D, P))),
                            n_samples=200, n_response=8, tol=1e-5, progress=False)
    t = sim.time.values
    simulated = sim.test_loss_population.mean("seed").values
    predicted = theory.test_loss.isel(alpha=0, eps=0, target_scale=0).interp(time=t).values
    error = np.linalg.norm(predicted - simulated) / np.linalg.norm(simulated)
    assert error < 0.075, error


@pytest.mark.slow
def test_dropping_the_spike_seed_moves_the_dmft_off_the_simulation(monkeypatch):
    """At a small size the DMFT follows the simulation within 8% (measured 6.2%); zeroing the
    bulk columns' beta_hat components A2 (G7b) more than doubles the error (measured 14.9%).
    (Dropping A2 from the bulk term of f alone, G4, changed it to 6.0%: that term is not what the
    delay misses.) 5.5 min on 2 CPU cores shared with other jobs."""
    full = _small_size_error()
    dropped = _small_size_error(monkeypatch, drop="A2")
    assert full < 0.08 and dropped > 2 * full


def test_agreement_refuses_an_unknown_teacher_protocol_before_any_work():
    with pytest.raises(ValueError, match="teacher must be one of"):
        agreement(100, [1.0], 0.02, 5.0, teacher="median")


def test_agreement_refuses_an_unknown_grid_and_a_grid_the_settings_would_override():
    with pytest.raises(ValueError, match="grid must be one of"):
        agreement(100, [1.0], 0.02, 5.0, grid="adaptve")
    with pytest.raises(ValueError, match=r"drop \['dt'\]"):
        agreement(100, [1.0], 0.02, 5.0, grid="adaptive", dt=5.0)
    with pytest.raises(ValueError, match="horizon=80.2"):
        agreement(100, [1.0], 0.02, 5.0, horizon=80.2)


def test_the_agreement_on_an_adaptive_grid_at_a_small_size(tmp_path):
    """`agreement(grid="adaptive")` (each alpha on its own `adaptive_times` grid, implicit
    scheme) at the small size above, through the table's own code path (lr_scale = D / 20):
    measured test L2 7.1%, grokking time +1.1%, delay -1.2% (the shared uniform grid: 6.3%,
    +1.3%, +5.7%); ~11 s on 2 cores. With `keep=` the simulations and the solve are kept in
    the folder, and the same call again reads them: the same row, the solve resumed from its
    converged checkpoint (one more iteration)."""
    settings = dict(horizon=15, n_samples=200, n_response=8, tol=1e-5)
    (row,) = agreement(40, [1.0], 0.1, 3.0, 8, "mean", "adaptive", keep=tmp_path, **settings)
    assert row["converged"] and row["iterations"] < 40
    assert row["test_l2"] < 0.075 and abs(row["grok"]) < 0.03 and abs(row["delay"]) < 0.05, row
    kept = sorted(path.suffix for path in tmp_path.iterdir() if path.suffix != ".lock")
    assert kept == [".npz", ".zarr"], kept
    (again,) = agreement(40, [1.0], 0.1, 3.0, 8, "mean", "adaptive", keep=tmp_path, **settings)
    assert again["iterations"] == row["iterations"] + 1
    for key in ("test_l2", "grok", "delay", "train_half", "grok_sim", "delay_sim"):
        assert again[key] == pytest.approx(row[key], rel=1e-4, abs=1e-4), key   # tol = 1e-5
    with pytest.raises(ValueError, match="keep=.*existing folder"):
        agreement(40, [1.0], 0.1, 3.0, 8, "mean", "adaptive", keep=tmp_path / "nowhere",
                  **settings)


def test_solve_settings_from_the_command_line():
    from dmft.grokking_agreement import parse_solve_settings

    assert parse_solve_settings(["n_samples=400", "tol=1e-5", "response_sampling=stratified",
                                 "damping=0.6"]) == {"n_samples": 400, "tol": 1e-5,
                                                     "response_sampling": "stratified",
                                                     "damping": 0.6}
    assert parse_solve_settings(["seed=0,1", "tol=1e-5,2"]) == {"seed": [0, 1], "tol": [1e-5, 2]}
    for bad in (["n_samples"], ["seed="], ["=3"]):
        with pytest.raises(ValueError, match="name=value"):
            parse_solve_settings(bad)
