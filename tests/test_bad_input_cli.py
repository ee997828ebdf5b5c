"""Bad input to the `lazyrich` command line, over every subcommand: exit status 2, exactly one
line on stderr that names the flag or argument at fault, and no file or folder created.

Every case runs `main(argv)` in-process in a fresh folder holding a few fixtures (a valid
result `run.nc`, a text file posing as one, a plain file `afile` and a folder `adir.nc`); the
last tests run the console module in a subprocess, as a user would.
"""

import os
import shutil
import subprocess
import sys

import pytest

OUT = ["--out", "x.nc"]
PNG = ["--out", "x.png"]

CASES = {
    # run: the experiment and its parameters
    "run unknown experiment": (["run", "nonsense", *OUT], "experiment='nonsense'"),
    "run no experiment": (["run", *OUT], "give the experiment first"),
    "run value out of range": (["run", "grokking", "--alpha", "-1", *OUT], "alpha"),
    "run value not a number": (["run", "grokking", "--alpha", "abc", *OUT], "--alpha 'abc'"),
    "run steps not a multiple": (["run", "grokking", "--steps", "10", "--log_every", "3", *OUT],
                                 "log_every"),
    "run bad choice": (["run", "teacher", "--activation", "tanh", *OUT], "activation"),
    "run bad bool": (["run", "grokking", "--linearized", "maybe", *OUT], "--linearized 'maybe'"),
    "run bad dynamics": (["run", "grokking", "--dynamics", "quantum", *OUT], "dynamics"),
    "run size zero": (["run", "grokking", "--D", "0", *OUT], "D=0"),
    "run unknown parameter": (["run", "grokking", "--width", "3", *OUT], "--width"),
    "run scalar given two values": (["run", "grokking", "--steps", "10", "20", *OUT], "20"),
    "run seed 2**32": (["run", "grokking", "--seed", "4294967296", *OUT], "seed"),
    "run negative seed": (["run", "grokking", "--seed", "-1", *OUT], "seed"),
    "run fractional seed": (["run", "grokking", "--seed", "1.5", *OUT], "--seed '1.5'"),
    "run chunk size zero": (["run", "grokking", "--chunk-size", "0", *OUT], "chunk_size"),
    "run chunk size not int": (["run", "grokking", "--chunk-size", "abc", *OUT], "--chunk-size"),
    # phase: the grokking phase diagram and the empirical delay of digits / modular
    "phase one alpha": (["phase", "grokking", "--alpha", "1", "--eps", "0.1", "0.2", *OUT],
                        "--alpha needs at least 2"),
    "phase no second axis": (["phase", "grokking", "--alpha", "1", "2", *OUT], "--P_over_D"),
    "phase unknown flag": (["phase", "grokking", "--alpha", "1", "2", "--eps", "0.1", "0.2",
                            "--width", "3", *OUT], "--width"),
    "phase bad method": (["phase", "grokking", "--alpha", "1", "2", "--eps", "0.1", "0.2",
                          "--method", "dmft", *OUT], "--method"),
    "phase no accuracy": (["phase", "teacher", "--lr", "0.5", "1.5", *OUT], "teacher"),
    # run: repeated flags
    "run repeated parameter": (["run", "grokking", "--alpha", "1", "--alpha", "2", *OUT],
                               "--alpha was given 2 times"),
    "run repeated with =": (["run", "grokking", "--alpha=1", "--alpha", "2", *OUT],
                            "--alpha was given 2 times"),
    "run repeated out": (["run", "grokking", "--out", "a.nc", "--out", "b.nc"],
                         "--out was given 2 times"),
    # run: outputs
    "run no output": (["run", "grokking", "--alpha", "1"], "--out"),
    "run bad suffix": (["run", "grokking", "--out", "x.txt"], "--out 'x.txt'"),
    "run missing folder": (["run", "grokking", "--out", "nodir/x.nc"], "--out 'nodir/x.nc'"),
    "run folder is a file": (["run", "grokking", "--out", "afile/x.nc"], "--out 'afile/x.nc'"),
    "run out is a folder": (["run", "grokking", "--out", "adir.nc"], "--out 'adir.nc'"),
    "run store missing folder": (["run", "grokking", "--store", "nodir/s.zarr"],
                                 "--store 'nodir/s.zarr'"),
    "run store is a file": (["run", "grokking", "--store", "afile"], "--store 'afile'"),
    "run overwrite without store": (["run", "grokking", "--overwrite", *OUT], "--overwrite"),
    # plot
    "plot missing file": (["plot", "missing.nc", *PNG], "'missing.nc' does not exist"),
    "plot not netcdf": (["plot", "notnc.nc", *PNG], "'notnc.nc' is not a netCDF file"),
    "plot no path": (["plot", *PNG], "path"),
    "plot no out": (["plot", "run.nc"], "--out"),
    "plot bad suffix": (["plot", "run.nc", "--out", "f.txt"], "--out 'f.txt'"),
    "plot missing folder": (["plot", "run.nc", "--out", "nodir/f.png"], "--out 'nodir/f.png'"),
    "plot repeated out": (["plot", "run.nc", "--out", "a.png", "--out", "b.png"],
                          "--out was given 2 times"),
    "plot bad colour axis": (["plot", "run.nc", "--colour-by", "width", *PNG],
                             "colour_by='width'"),
    # compare
    "compare no theory for experiment": (["compare", "teacher", *PNG], "'teacher'"),
    "compare no experiment": (["compare", *PNG], "experiment"),
    "compare bad theory": (["compare", "grokking", "--theory", "exact", *PNG], "--theory"),
    "compare repeated theory": (["compare", "grokking", "--theory", "dmft", "--theory",
                                 "kernel", *PNG], "--theory was given 2 times"),
    "compare swept size": (["compare", "grokking", "--N", "8", "16", *PNG], "--N"),
    "compare kernel needs network": (["compare", "grokking", "--theory", "kernel",
                                      "--dynamics", "infinite", *PNG], "--theory kernel"),
    "compare repeated parameter": (["compare", "grokking", "--alpha", "1", "--alpha", "8",
                                    *PNG], "--alpha was given 2 times"),
    "compare no out": (["compare", "grokking"], "--out"),
    "compare too few theory points": (["compare", "grokking", "--theory-points", "5", *PNG],
                                      "--theory-points"),
    "compare one theory sample": (["compare", "grokking", "--theory-samples", "1", *PNG],
                                  "--theory-samples"),
    "compare no theory draw": (["compare", "grokking", "--theory-draws", "0", *PNG],
                               "--theory-draws must be between 1 and 8 (got 0)"),
    "compare too many theory draws": (["compare", "grokking", "--theory-draws", "9", *PNG],
                                      "--theory-draws must be between 1 and 8 (got 9)"),
    "compare kernel draws": (["compare", "grokking", "--theory", "kernel", "--theory-draws",
                              "2", *PNG], "--theory-draws 2 needs --theory dmft"),
    "compare bad suffix": (["compare", "grokking", "--out", "x.nc"], "--out 'x.nc'"),
    "compare missing folder": (["compare", "grokking", "--out", "nodir/x.png"],
                               "--out 'nodir/x.png'"),
    # demo
    "demo missing parent": (["demo", "--out-dir", "nodir/sub"], "--out-dir 'nodir/sub'"),
    "demo out is a file": (["demo", "--out-dir", "afile"], "--out-dir 'afile'"),
    "demo unknown flag": (["demo", "--bogus"], "--bogus"),
    "demo repeated flag": (["demo", "--out-dir", "a", "--out-dir", "b"],
                           "--out-dir was given 2 times"),
    # gallery
    "gallery unknown figure": (["gallery", "--only", "nonsense"], "--only"),
    "gallery missing parent": (["gallery", "--out", "nodir/figures"], "--out 'nodir/figures'"),
    "gallery out is a file": (["gallery", "--out", "afile"], "--out 'afile'"),
    "gallery repeated flag": (["gallery", "--only", "teacher", "--only", "digits"],
                              "--only was given 2 times"),
    # experiments and the command itself
    "experiments extra argument": (["experiments", "extra"], "extra"),
    "info extra argument": (["info", "--jsn"], "--jsn"),
    "unknown command": (["frobnicate"], "'frobnicate'"),
}


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    import lazyrich

    path = tmp_path_factory.mktemp("result") / "run.nc"
    lazyrich.save(lazyrich.sweep("grokking", alpha=[0.5, 2.0], D=4, N=8, P=6, n_test=5,
                                 steps=4, log_every=2, progress=False), path)
    return path


def _tree(folder) -> set[str]:
    return {os.path.relpath(os.path.join(root, name), folder)
            for root, dirs, files in os.walk(folder) for name in dirs + files}


def test_the_catalogue_is_large_and_covers_every_command():
    from lazyrich.views.cli import COMMANDS

    assert len(CASES) >= 30
    assert {argv[0] for argv, _ in CASES.values()} >= set(COMMANDS)


@pytest.mark.parametrize("argv, named", list(CASES.values()), ids=list(CASES))
def test_command_line_exits_2_with_one_line_naming_the_argument_and_writes_nothing(
        argv, named, result_file, tmp_path, monkeypatch, capsys):
    from lazyrich.views.cli import main

    monkeypatch.chdir(tmp_path)
    shutil.copy(result_file, tmp_path / "run.nc")
    (tmp_path / "notnc.nc").write_text("not a netCDF file\n")
    (tmp_path / "afile").write_text("a plain file\n")
    (tmp_path / "adir.nc").mkdir()
    before = _tree(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert named in err, err
    assert err.startswith(f"lazyrich {argv[0]}: " if argv[0] != "frobnicate" else "lazyrich: ")
    assert _tree(tmp_path) == before


SUBPROCESS_CASES = {
    "missing folder after a sweep would have run": (
        ["run", "grokking", "--alpha", "1", "--out", "/nodir/x.nc"], "--out '/nodir/x.nc'"),
    "repeated flag": (["run", "grokking", "--alpha", "1", "--alpha", "2", "--out", "x.nc"],
                      "--alpha was given 2 times"),
    "unknown command": (["frobnicate"], "unknown command 'frobnicate'"),
}


@pytest.mark.parametrize("argv, named", list(SUBPROCESS_CASES.values()),
                         ids=list(SUBPROCESS_CASES))
def test_console_module_exits_2_with_one_line_and_no_traceback(argv, named, tmp_path):
    result = subprocess.run([sys.executable, "-m", "lazyrich.views.cli", *argv],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and named in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_console_module_without_a_command_lists_the_commands_and_exits_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lazyrich.views.cli"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2 and "commands:" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_misspelt_flag_is_refused_with_the_closest_flag(tmp_path, monkeypatch, capsys):
    from lazyrich.views.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "grokking", "--alpah", "1", "--out", "x.nc"]) == 2
    err = capsys.readouterr().err
    assert "--alpah -> --alpha" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
