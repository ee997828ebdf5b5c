"""The grokking DMFT's cost estimate (dmft/grokking_cost.py) against XLA's own accounting, and
the grid `lazyrich compare` chooses for it (lazyrich/views/theory.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmft import grokking
from dmft import grokking_statistics as statistics_
from lazyrich.views.theory import MAX_DMFT_POINTS, dmft_grid, dmft_grids


def _xla_bytes(batch, samples, n, response, rank=48):
    """Arguments + outputs + temporaries of the compiled, batched iteration, from XLA's memory
    analysis of abstract shapes (nothing is allocated)."""
    def f64(*shape):
        return jax.ShapeDtypeStruct(shape, jnp.float64)

    def iterate(state, alpha, z, mixing):
        def one(st, a):
            p = {"alpha": a, "eps": 0.02, "lam": 5.0, "ds": 0.2, "dim": 100, "scale": 1.0}
            new, out = grokking._iterate(st, p, z, mixing, response, min(rank, n))
            return new, statistics_.statistics(out, a, 0.02, 100, 1.0)
        return jax.vmap(one)(state, alpha)

    state = (f64(batch, samples, n, 2), f64(batch, n, n, 2, 2), f64(batch, n, n),
             f64(batch, n, n), f64(batch, n, n), f64(batch, n), f64(batch, samples, n))
    lowered = jax.jit(iterate).lower(state, f64(batch), f64(samples), f64(samples, samples))
    memory = lowered.compile().memory_analysis()
    return (memory.temp_size_in_bytes + memory.argument_size_in_bytes
            + memory.output_size_in_bytes)


@pytest.mark.parametrize("batch, samples, n, response, n_response_grows", [
    (1, 200, 60, 4, True),
    # a second shape (batched, longer grid) only in the slow run: each compile costs ~5-10 s
    pytest.param(2, 100, 150, 16, False, marks=pytest.mark.slow)])
def test_memory_estimate_bounds_xla_accounting(x64, batch, samples, n, response,
                                               n_response_grows):
    """estimate_cost's bytes are at least XLA's count for one compiled iteration (arguments,
    outputs, temporaries) and at most 2.5 times it, without the Anderson history (measured
    ratio 1.01-1.25); the history adds 2 h + 3 copies of the state. The memory barely grows
    with n_response (responses are summed in a scan, not stacked)."""
    cost = grokking.estimate_cost(t_max=float(n - 1), dt=1.0, D=100, P_over_D=5.0, batch=batch,
                                  n_samples=samples, n_response=response, bulk_rank=48,
                                  anderson=0)
    assert cost.time_points == n
    counted = _xla_bytes(batch, samples, n, response)
    assert counted <= cost.memory_bytes <= 2.5 * counted
    if n_response_grows:  # one case: each of these compiles costs ~5 s
        assert _xla_bytes(batch, samples, n, 4 * response) <= 1.2 * counted


def test_compare_grid_is_set_in_theory_time():
    """The compare grid's spacing is half the stability limit in s = t / D whatever D is; the
    number of points is the horizon in s, capped at MAX_DMFT_POINTS (the theory then stops
    early and says so). The README's D = 100 command fits entirely; D = 40 (the command that
    was OOM-killed at 18 GB) stops at s ~ 100 and needs a few GiB, not 18."""
    for dim, P in ((100, 550), (40, 200), (400, 2000)):
        scalars = {"steps": 20_000, "lr_scale": 0.5, "D": dim, "P": P}
        grid = dmft_grid(scalars)
        t_end, dt, note = grid.t_end, grid.dt, grid.note
        assert grid.scheme == "explicit"
        limit = grokking.stability_limit_dt(dim, P / dim)
        assert dt <= 0.5 * limit + 1e-9 and dt / dim > 0.2
        points = round(t_end / dt) + 1
        assert points <= MAX_DMFT_POINTS
        if dim == 40:
            assert t_end < 10_000 and "stops at" in note
            cost = grokking.estimate_cost(t_end, dt, D=dim, P_over_D=P / dim, batch=6,
                                          n_samples=400, n_response=32)
            assert cost.memory_bytes < 4 * 2**30
        else:
            assert t_end == pytest.approx(10_000.0)


def test_default_grid_follows_D_and_P_over_D():
    """The default grid is set in s = t / D: the issue's call solve(1, 0.02, 5, lr_scale=5,
    t_max=8000, D=100) gets 337 points (it once stopped at dt=50 beyond the stability limit
    47.75), and halving D over the same horizon in s keeps the number of points; the per-phase
    work count grows as n^3 in the response solves."""
    full = grokking.estimate_cost(8000.0, None, D=100, P_over_D=5.0)
    half = grokking.estimate_cost(4000.0, None, D=50, P_over_D=5.0)
    assert full.time_points == half.time_points == 337
    assert full.dt < grokking.stability_limit_dt(100, 5.0) == pytest.approx(47.75, abs=0.01)
    assert grokking.estimate_cost(8000.0, None, D=100, P_over_D=3.0).time_points > 337
    from dmft.grokking_cost import iteration_work
    small, large = (iteration_work(n, 400, 16, 16)["responses"][0] for n in (100, 200))
    assert large / small == pytest.approx(8.0, rel=0.02)


def test_each_alpha_gets_the_grid_its_dynamics_needs():
    """The paper's settings (D = 100, P = 450, 60k steps at lr_scale 0.5, alpha 2^-3 .. 2^3):
    the richest alpha gets ds = 0.02 alpha / eps (the shared grid diverged there), rich runs stop
    once settled (8x the closed-form grokking time, at least s = 40), the lazy ones share the
    whole run on one grid, solved together; every grid fits the point cap. The README's compare
    (alpha 1, 8, 64 over s <= 100) keeps its single grid."""
    scalars = {"steps": 60_000, "lr_scale": 0.5, "D": 100, "P": 450, "eps": 0.02}
    alphas = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    grids = dmft_grids(scalars, alphas, max_points=1400)
    assert sorted(a for group, _ in grids for a in group) == alphas
    by_alpha = {a: grid for group, grid in grids for a in group}
    assert by_alpha[0.125].dt == pytest.approx(0.02 * 0.125 / 0.02 * 100)
    assert by_alpha[0.125].t_end == pytest.approx(4000.0)                  # s = 40
    assert by_alpha[0.25].dt > 1.8 * by_alpha[0.125].dt
    assert by_alpha[0.25].t_end < by_alpha[0.5].t_end < by_alpha[1.0].t_end < 30_000
    lazy = [group for group, grid in grids if grid.t_end == pytest.approx(30_000)]
    assert lazy == [[2.0, 4.0, 8.0]]
    for _group, grid in grids:
        assert grid.scheme == "explicit" and grid.times.size <= 1400
        assert "stops at" not in grid.note
    readme = {"steps": 20_000, "lr_scale": 0.5, "D": 100, "P": 550, "eps": 0.02}
    [(group, grid)] = dmft_grids(readme, [1.0, 8.0, 64.0])
    assert group == [1.0, 8.0, 64.0] and grid.scheme == "explicit"
    np.testing.assert_array_equal(grid.times, dmft_grid(readme).times)


def test_past_the_point_cap_the_grid_is_non_uniform_and_implicit():
    """At the paper's settings with the default cap (420 points) the alphas whose uniform grid
    would not fit get `adaptive_times` stepped implicitly and cover the whole run (they used to
    stop at s ~ 100 of 300); the rich ones keep their uniform explicit grid; every grid fits.
    Under a cap neither grid fits, the one that reaches further is cut."""
    scalars = {"steps": 60_000, "lr_scale": 0.5, "D": 100, "P": 450, "eps": 0.02}
    alphas = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    by_alpha = {a: grid for group, grid in dmft_grids(scalars, alphas) for a in group}
    assert by_alpha[0.125].scheme == "explicit"
    for alpha in (1.0, 2.0, 4.0, 8.0):
        grid = by_alpha[alpha]
        assert grid.scheme == "implicit" and "non-uniform" in grid.note
        assert grid.times.size <= MAX_DMFT_POINTS and "stops at" not in grid.note
        assert grid.dt == pytest.approx(max(0.02 * alpha / 0.02, grid.times[1] / 100) * 100)
    assert by_alpha[8.0].t_end == pytest.approx(30_000.0)
    assert by_alpha[8.0].times.size < by_alpha[2.0].times.size < 420
    # a cap that neither fits: the theory stops early on the grid that reaches further
    uniform = dmft_grid(scalars, 80)
    lazy = dmft_grid(scalars, 80, alpha=4.0)
    assert lazy.scheme == "implicit" and lazy.times.size == 80 and "stops at" in lazy.note
    assert lazy.t_end > 1.5 * uniform.t_end
    rich = dmft_grid(scalars, 80, alpha=0.125)
    assert rich.scheme == "explicit" and rich.times.size == 80 and "stops at" in rich.note
