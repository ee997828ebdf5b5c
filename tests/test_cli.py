"""The `lazyrich` command line: run -> netCDF -> plot, and its errors."""

import subprocess
import sys

import numpy as np

import lazyrich
from lazyrich.views.cli import main


def test_run_writes_netcdf_that_round_trips_and_plots(tmp_path, capsys):
    out = tmp_path / "run.nc"
    status = main(["run", "grokking", "--alpha", "0.5", "2", "--seed", "0", "1", "--D", "8",
                   "--N", "16", "--P", "20", "--n_test", "30", "--steps", "40",
                   "--log_every", "20", "--no-progress", "--out", str(out)])
    assert status == 0
    ds = lazyrich.load(out)
    assert ds.train_loss.dims == ("alpha", "seed", "step")
    assert ds.sizes["alpha"] == 2 and ds.sizes["step"] == 3 and ds.attrs["D"] == 8
    api = lazyrich.sweep("grokking", alpha=[0.5, 2.0], seed=[0, 1], D=8, N=16, P=20,
                         n_test=30, steps=40, log_every=20, progress=False)
    np.testing.assert_allclose(ds.test_loss.values, api.test_loss.values, rtol=1e-6)
    figure = tmp_path / "fig.png"
    assert main(["plot", str(out), "--out", str(figure)]) == 0
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000


def test_run_keeps_command_line_order(tmp_path):
    out = tmp_path / "run.nc"
    assert main(["run", "grokking", "--seed", "0", "1", "--N", "8", "16", "--alpha", "1",
                 "--D", "4", "--P", "6", "--n_test", "5", "--steps", "4", "--log_every", "2",
                 "--no-progress", "--out", str(out)]) == 0
    assert lazyrich.load(out).train_loss.dims == ("seed", "N", "step")


def test_run_reports_bad_values_and_unknown_experiments(tmp_path, capsys):
    out = str(tmp_path / "x.nc")
    assert main(["run", "nonsense", "--out", out]) == 2
    assert "known experiments" in capsys.readouterr().err
    assert main(["run", "grokking", "--alpha", "0", "--steps", "10", "--log_every", "5",
                 "--out", out]) == 2
    assert "alpha=0.0" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["plot", str(tmp_path / "missing.nc"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_compare_runs_simulation_and_theory_and_draws_them(tmp_path):
    figure = tmp_path / "compare.png"
    assert main(["compare", "grokking", "--alpha", "1", "1000", "--seed", "0", "1", "--D", "6",
                 "--N", "12", "--P", "15", "--n_test", "20", "--steps", "40", "--log_every",
                 "10", "--no-progress", "--out", str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    assert main(["compare", "grokking", "--N", "8", "16", "--steps", "4", "--log_every", "2",
                 "--out", str(figure)]) == 2
    assert main(["compare", "rnn", "--out", str(figure)]) == 2


def test_compare_theory_choice(tmp_path, capsys):
    """--theory kernel draws the lazy limit (needs dynamics='network'); dmft (the default)
    accepts the moments dynamics; an unknown theory is refused."""
    figure = tmp_path / "kernel.png"
    small = ["--D", "6", "--N", "12", "--P", "15", "--n_test", "20", "--steps", "40",
             "--log_every", "10", "--no-progress", "--out", str(figure)]
    assert main(["compare", "grokking", "--theory", "kernel", *small]) == 0
    assert figure.stat().st_size > 10_000
    assert main(["compare", "grokking", "--theory", "kernel", "--dynamics", "infinite",
                 *small]) == 2
    assert "dynamics='network'" in capsys.readouterr().err
    assert main(["compare", "grokking", "--dynamics", "infinite", *small]) == 0
    assert main(["compare", "grokking", "--theory", "exact", *small]) == 2
    assert "--theory must be one of" in capsys.readouterr().err


def test_console_script_lists_experiments():
    result = subprocess.run([sys.executable, "-m", "lazyrich.views.cli", "experiments"],
                            capture_output=True, text=True, check=True)
    assert "grokking" in result.stdout and "lr_scale" in result.stdout
