"""What the theory's solvers do at their limits (issue 13): batched P/D, the iteration cap,
progress, the default time step, and refusing work that would not fit before allocating it."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dmft import ConvergenceWarning, committee, grokking, kernel
from lazyrich.core.checks import MemoryEstimateError

SMALL = {"t_max": 60.0, "dt": 5.0, "D": 20, "n_samples": 64, "n_response": 2, "bulk_rank": 8,
         "tol": 1e-6, "progress": False}


def test_a_list_of_P_over_D_is_batched_like_separate_solves():
    """P_over_D=[3, 5] gives a P_over_D axis whose slices equal the two scalar solves (it used
    to use 3 alone, silently); the same 8 iterations each (tol = 0), since a batch stops on its
    largest residual."""
    fixed = {**SMALL, "tol": 0.0, "max_iter": 8}
    with pytest.warns(ConvergenceWarning):
        both = grokking.solve(1.0, 0.1, [3.0, 5.0], **fixed)
    assert both.test_loss.dims == ("alpha", "eps", "target_scale", "P_over_D", "time")
    for lam in (3.0, 5.0):
        with pytest.warns(ConvergenceWarning):
            alone = grokking.solve(1.0, 0.1, lam, **fixed)
        assert alone.attrs["P_over_D"] == lam and "P_over_D" not in alone.dims
        np.testing.assert_allclose(both.test_loss.sel(P_over_D=lam), alone.test_loss,
                                   rtol=1e-10)
    assert not np.allclose(both.test_loss.isel(P_over_D=0), both.test_loss.isel(P_over_D=1))


def test_hitting_max_iter_warns_with_the_residual_and_the_knobs():
    """Stopping at max_iter before tol warns ConvergenceWarning (a RuntimeWarning) naming the
    residual reached and max_iter; converging does not warn."""
    with pytest.warns(ConvergenceWarning, match=r"max_iter=2 with residual [0-9.e+-]+ > "
                                                r"tol=1e-06.*Raise max_iter=.*damping="):
        ds = grokking.solve(1.0, 0.1, 3.0, **{**SMALL, "max_iter": 2})
    assert ds.attrs["converged"] == 0 and np.isfinite(ds.attrs["residual"])
    assert issubclass(ConvergenceWarning, RuntimeWarning)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        converged = grokking.solve(1.0, 0.1, 3.0, **{**SMALL, "tol": 1e-3})
    assert converged.attrs["converged"] == 1


def test_progress_reports_cost_iteration_and_residual(capfd):
    """progress=True (the default) prints the cost estimate and a bar with the residual and the
    time left on stderr; progress=False prints nothing. (The bar first, on a grid of its own:
    a solve whose program is already compiled can finish before the bar's first refresh.)"""
    grokking.solve(1.0, 0.1, 3.0, **{**SMALL, "progress": True, "tol": 1e-3, "t_max": 55.0})
    err = capfd.readouterr().err
    assert "12 time points" in err and "per fixed-point iteration" in err
    assert "residual" in err and "time left" in err and "iter" in err
    grokking.solve(1.0, 0.1, 3.0, **{**SMALL, "progress": False, "tol": 1e-3})
    assert capfd.readouterr().err == ""


def test_default_dt_follows_D_and_P_over_D_and_is_stable():
    """dt=None takes half the stability limit D / (1 + (P/D)^-1/2)^2, rounded so that the grid
    ends at t_max: the issue's example (D = 100, P/D = 5, t_max = 8000) used to fail its own
    stability check with the fixed default dt = 50."""
    limit = grokking.stability_limit_dt(100, 5.0)
    assert limit == pytest.approx(100 / (1 + 5**-0.5) ** 2)
    dt = grokking.default_dt(8000.0, 100, 5.0)
    assert 0.45 * limit < dt <= 0.5 * limit and 8000.0 / dt == pytest.approx(round(8000.0 / dt))
    assert grokking.default_dt(8000.0, 50, 5.0) == pytest.approx(dt / 2, rel=0.01)
    with pytest.warns(ConvergenceWarning):
        ds = grokking.solve(1.0, 0.02, 5.0, lr_scale=5.0, t_max=8000.0, D=100, n_samples=16,
                            n_response=1, bulk_rank=4, max_iter=1, progress=False)
    assert ds.attrs["dt"] == pytest.approx(dt) and ds.time.values[-1] == pytest.approx(8000.0)
    assert np.all(np.isfinite(ds.test_loss))


def test_memory_refusals_name_the_knob(monkeypatch):
    """With 1 GiB available, over-large solves are refused (MemoryEstimateError, a MemoryError
    and a ValueError) with the estimate and the parameter to change."""
    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", str(2**30))
    with pytest.raises(MemoryEstimateError, match=r"20001 time points.*GiB.*raise dt="):
        grokking.solve(1.0, 0.02, 5.0, t_max=1e4, dt=0.5, progress=False)
    eye = np.eye(2)
    with pytest.raises(MemoryEstimateError, match=r"1000000001 times.*log_every="):
        committee.solve(0.5, eye, eye, eye, t_max=1e6, dt=1e-3, log_every=1)
    with pytest.raises(MemoryEstimateError, match=r"n_test="):
        kernel.grokking_lazy_curves(n_test=10**8)
    with pytest.raises(MemoryEstimateError, match=r"steps="):
        kernel.learning_curves(np.eye(3), np.ones((1, 3)), np.ones(3), np.ones(1),
                               np.broadcast_to(np.arange(1), (10**8,)), 0.1)  # no 0.8 GB array


REFUSAL = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
import numpy as np
from dmft import committee, grokking
from lazyrich.core.checks import MemoryEstimateError
start = time.perf_counter()
try:
    {call}
except MemoryEstimateError as error:
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    peak = int(status.split()[0]) / 2**20
    print(f"refused after {{time.perf_counter() - start:.2f}} s, peak {{peak:.2f}} GiB: {{error}}")
    sys.exit(0)
sys.exit("not refused")
"""


@pytest.mark.parametrize("call", [
    "grokking.solve(1.0, 0.02, 5.0, t_max=1e4, dt=0.5, progress=False)",
    "committee.solve(0.5, np.eye(2), np.eye(2), np.eye(2), t_max=1e6, dt=1e-3, log_every=1)",
])
def test_refusal_comes_before_allocation_under_an_address_space_limit(call):
    """Under RLIMIT_AS = 4 GiB in a fresh process, the issue's two calls (25 GB asked for, and a
    SIGABRT of the whole process) are refused with MemoryEstimateError within seconds and
    with the process's peak resident memory far below the estimate."""
    env = {k: v for k, v in os.environ.items() if k != "LAZYRICH_MEMORY_BYTES"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(REFUSAL).format(call=call)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    seconds, peak = (float(word) for word in result.stdout.split()[2:6:3])
    assert seconds < 5 and peak < 1.5, result.stdout
    assert "this process can use" in result.stdout
