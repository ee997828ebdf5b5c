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


def test_compare_runs_simulation_and_theory_and_draws_them(tmp_path, capsys, monkeypatch):
    """Here with two Monte Carlo draws of the DMFT, whose mean is drawn (one draw and several
    alphas: the README's compare commands and the next test)."""
    from lazyrich.views import cli_compare

    drawn = []
    draw = cli_compare._draw
    monkeypatch.setattr(cli_compare, "_draw", lambda theory, *args: (drawn.append(theory),
                                                                     draw(theory, *args)))
    figure = tmp_path / "compare.png"
    assert main(["compare", "grokking", "--alpha", "1", "--seed", "0", "1", "--D", "6",
                 "--N", "12", "--P", "15", "--n_test", "20", "--steps", "40", "--log_every",
                 "10", "--no-progress", "--theory-draws", "2", "--theory-samples", "100", "--out",
                 str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    assert "x 2 Monte Carlo draws" in capsys.readouterr().err
    (theory,) = drawn
    assert set(theory.test_loss.dims) == {"alpha", "time"} and theory.attrs["mc_spread"] >= 0
    assert main(["compare", "grokking", "--N", "8", "16", "--steps", "4", "--log_every", "2",
                 "--out", str(figure)]) == 2
    assert main(["compare", "rnn", "--out", str(figure)]) == 2


def test_compare_theory_choice(tmp_path, capsys):
    """--theory kernel needs dynamics='network' (it draws the lazy limit: the next test and the
    README); dmft (the default) accepts the moments dynamics, and with --keep keeps its work
    for the same command again; an unknown theory is refused."""
    figure = tmp_path / "kernel.png"
    small = ["--D", "6", "--N", "12", "--P", "15", "--n_test", "20", "--steps", "40",
             "--log_every", "10", "--no-progress", "--out", str(figure)]
    assert main(["compare", "grokking", "--theory", "kernel", "--dynamics", "infinite",
                 *small]) == 2
    assert "dynamics='network'" in capsys.readouterr().err
    keep = tmp_path / "kept"
    for _ in range(2):     # the second time from the kept simulation and solve
        assert main(["compare", "grokking", "--dynamics", "infinite", "--theory-samples", "50",
                     "--keep", str(keep), *small]) == 0
        assert figure.stat().st_size > 10_000
    kept = sorted(path.suffix for path in keep.iterdir() if path.suffix != ".lock")
    assert kept == [".npz", ".zarr"], kept
    assert main(["compare", "grokking", "--keep", str(figure), *small]) == 2
    assert "--keep" in capsys.readouterr().err
    assert main(["compare", "grokking", "--theory", "exact", *small]) == 2
    assert "argument --theory: invalid choice: 'exact'" in capsys.readouterr().err


def test_compare_reports_its_stages_and_the_file_it_wrote(tmp_path, capsys):
    """Each stage is announced as it starts and timed when it ends; the last lines name the file
    written and the total time."""
    figure = tmp_path / "kernel.png"
    assert main(["compare", "grokking", "--theory", "kernel", "--D", "6", "--N", "12", "--P",
                 "15", "--n_test", "20", "--steps", "40", "--log_every", "10", "--no-progress",
                 "--out", str(figure)]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = [line for line in lines if line.endswith("...")]
    assert [line.split("]")[0][-3:] for line in starts] == ["1/3", "2/3", "3/3"]
    assert "simulation: 1 run(s) of grokking" in starts[0] and "theory" in starts[1]
    assert sum(" done in " in line for line in lines) == 3
    assert lines[-2] == f"lazyrich compare: wrote {figure}"
    assert lines[-1].startswith("lazyrich compare: finished in ")


def test_run_store_writes_and_resumes_like_the_api(tmp_path, capsys):
    """`run --store` writes the store `sweep(store=)` would: the API resumes from it (same
    configuration, nothing refused) with the same values, and a second `run --store --out`
    reads it back into a netCDF file with the same numbers."""
    store, out = tmp_path / "runs.zarr", tmp_path / "run.nc"
    small = ["--alpha", "0.5", "2", "--seed", "0", "1", "--D", "8", "--N", "16", "--P", "20",
             "--n_test", "30", "--steps", "40", "--log_every", "20", "--chunk-size", "2",
             "--no-progress"]
    assert main(["run", "grokking", *small, "--store", str(store)]) == 0
    assert "wrote" in capsys.readouterr().out and not out.exists()
    stored = lazyrich.open(store)
    assert bool(stored.finished.all())
    api = lazyrich.sweep("grokking", alpha=[0.5, 2.0], seed=[0, 1], D=8, N=16, P=20,
                         n_test=30, steps=40, log_every=20, chunk_size=2, progress=False,
                         store=store)
    np.testing.assert_array_equal(api.test_loss.values, stored.test_loss.values)
    assert main(["run", "grokking", *small, "--store", str(store), "--out", str(out)]) == 0
    np.testing.assert_array_equal(lazyrich.load(out).test_loss.values, api.test_loss.values)


def test_run_prints_refusals_of_the_library_as_one_line(tmp_path, monkeypatch, capsys):
    """A MemoryEstimateError (a ValueError and a MemoryError) raised by sweep is one line on
    stderr with exit status 2, not a traceback."""
    from lazyrich.core.checks import MemoryEstimateError
    from lazyrich.views import cli

    def refuse(*args, **kwargs):
        raise MemoryEstimateError("sweep of 4 runs needs about 61.0 GiB but this process can\n"
                                  "use 8.0 GiB; lower chunk_size= (now 4)")

    monkeypatch.setattr(cli, "sweep", refuse)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "grokking", "--out", "x.nc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lazyrich run: sweep of 4 runs needs")
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_command_with_one_line_each(capsys):
    """`lazyrich --help` prints each command with a one-line summary (exit 0); no command
    prints the same on stderr (exit 2); a subcommand's --help exits 0."""
    from lazyrich.views.cli import COMMANDS

    assert main(["--help"]) == 0
    out = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in out if line.startswith("  ")]
    assert listed == list(COMMANDS)
    assert {"run", "plot", "compare", "demo", "gallery", "experiments", "info"} <= set(COMMANDS)
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err
    assert main(["run", "grokking", "--help"]) == 0
    assert "--alpha" in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    assert "grokking" in capsys.readouterr().out


def test_console_script_lists_experiments():
    result = subprocess.run([sys.executable, "-m", "lazyrich.views.cli", "experiments"],
                            capture_output=True, text=True, check=True)
    assert "grokking" in result.stdout and "lr_scale" in result.stdout


def test_demo_reports_its_stages_and_writes_its_two_files(tmp_path, monkeypatch, capsys):
    """`lazyrich demo` (here at a tiny size) creates its folder, announces simulation, save and
    figure as they start, and ends with the two files it wrote."""
    from lazyrich.views import gallery

    for key, value in {"D": 6, "N": 12, "P": 15, "steps": 20, "log_every": 10,
                       "alpha": [1.0, 2.0]}.items():
        monkeypatch.setitem(gallery.DEMO, key, value)
    out = tmp_path / "demo"
    assert main(["demo", "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grokking.nc", "grokking.png"]
    lines = capsys.readouterr().out.splitlines()
    starts = [line for line in lines if line.endswith("...")]
    assert "[1/3] simulation: 4 runs of grokking, 20 steps" in starts[0]
    assert starts[1].endswith(f"[2/3] save {out / 'grokking.nc'} ...")
    assert lines[-3:-1] == [f"lazyrich demo: wrote {out / 'grokking.nc'}",
                            f"lazyrich demo: wrote {out / 'grokking.png'}"]
