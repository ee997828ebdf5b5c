"""Every code block of README.md runs as written, so the examples cannot rot.

The ```python blocks run in order in one namespace (a block may use names an earlier block
defined, as a reader's session would) and the shell blocks' commands run in between, all in a
temporary folder: `lazyrich ...` and `python -m provenance ...` through their
`main` in this process. `make` lines are skipped (`make demo` is `lazyrich demo`,
`make test` is this suite), and so is the accelerator install line (its extras are checked against
the package index by `tests/test_accelerator_extras.py`).

By default the text is first shrunk by the table SMALL (step counts, the ODE horizon, the number
of tasks, the RNN's size), so the whole README runs in about a minute; every pattern of the
table must match the README, so an edited example cannot silently escape it. Set
LAZYRICH_README_SCALE=full to run the blocks exactly as written (hours: the paper-size sweeps and
the DMFT). The provenance power curve and demo take minutes at any scale and run only in the
slow test.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"
SCALE = os.environ.get("LAZYRICH_README_SCALE", "small")

# regex -> replacement, applied to the whole README before its blocks are extracted
SMALL = {
    r"\bsteps=[\d_]+": "steps=40",
    r"--steps \d+": "--steps 40",
    r"\blog_every=\d+": "log_every=10",
    r"--log_every \d+": "--log_every 10",
    r"\bt_max=[\d.]+": "t_max=2.0",                      # committee ODEs
    r"task_seed=range\(\d+\)": "task_seed=range(3)",     # linear_rank tasks
    # rnn_rank: one of the three tasks (each compiles its own program; several tasks are
    # tests/test_plot_rank.py's), rank <= N
    r"--task 2AF DMS CXT --rank 1 30 100 300 (.*)--N 300": r"--task 2AF --rank 1 4 \1--N 8",
    # compare at the paper's settings: a rich and a lazy alpha (two DMFT grids), small size
    r"--alpha 0.125 0.25 0.5 1 2 4 8 --seed 0 --D 100 --N 500 --P (\d\d)0":
        r"--alpha 0.125 8 --seed 0 --D 10 --N 20 --P \1 --n_test 20",
    # compare: the DMFT and the NTKs at a small size and 40 steps (its own steps are the default)
    r"--D 100 --N 500 --P 550": "--D 10 --N 20 --P 30 --n_test 20 --steps 40 --log_every 10",
    r"--seed 0 1 2 --D 64": "--seed 0 --D 12",              # lazyrich phase grokking
    # the DMFT compares: 100 Monte Carlo paths instead of 400 (the figure, not its accuracy)
    r"--out (compare|paper_P\d+)\.png": r"--theory-samples 100 --out \1.png",
}
# `make` is the suite itself or the demo; the accelerator install is checked against the package
# index by tests/test_accelerator_extras.py instead of being run
SKIPPED = ("make ", ".venv/bin/python -m pip install ")
SLOW = ("python -m provenance power", "python -m provenance demo")
COMMANDS = ("lazyrich ", "python -m provenance ", *SKIPPED)
# no test may pass 60 s: the `lazyrich compare` commands run in a test of their own (no block
# reads what they write), and the blocks from this section on in another (they use no name or
# file of an earlier section)
APART = ("lazyrich compare ",)
SECOND_HALF = "## Beyond the toy"


def readme_text(scale: str = SCALE) -> str:
    text = README.read_text()
    if scale == "full":
        return text
    for pattern, replacement in SMALL.items():
        text = re.sub(pattern, replacement, text)
    return text


def code_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, language, code) of every fenced block, in order."""
    return [(text[:match.start()].count("\n") + 1, match.group(1), match.group(2))
            for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def shell_commands(code: str) -> list[str]:
    """The commands of a shell block, comments removed."""
    lines = (line.split("#", 1)[0].strip() for line in code.splitlines())
    return [line for line in lines if line]


def run_command(command: str, folder: Path) -> None:
    """`lazyrich ...` and `python -m provenance ...` through their `main` in this process (an
    interpreter start costs ~3 s of imports; tests/test_provenance_readme.py runs one through
    `python -m`), anything else in a subprocess."""
    from lazyrich.views.cli import main
    from provenance.__main__ import main as provenance_main

    argv = shlex.split(command)
    if argv[0] == "lazyrich":
        assert main(argv[1:]) == 0, command
    elif argv[:3] == ["python", "-m", "provenance"]:
        assert provenance_main(argv[3:]) == 0, command
    else:
        result = subprocess.run([sys.executable, *argv[1:]], cwd=folder, capture_output=True,
                                text=True)
        assert result.returncode == 0, f"{command}\n{result.stderr}"


def run_readme(folder: Path, monkeypatch, slow: bool, part: str = "all") -> list[str]:
    """Run the blocks of `part` (and, if slow, the slow commands); returns what ran, for the
    report. part: "all"; "compare" (the APART commands only); "first" / "second" (the rest,
    before / from the SECOND_HALF heading)."""
    import matplotlib.pyplot as plt

    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "readme"}
    ran = []
    text = readme_text()
    split = text[:text.index(SECOND_HALF)].count("\n") + 1
    for line, language, code in code_blocks(text):
        where = f"README.md block at line {line}"
        if part in ("first", "second") and (line >= split) != (part == "second"):
            continue
        if language == "python":
            if part == "compare":
                continue
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - the README is ours
            ran.append(where)
        else:
            for command in shell_commands(code):
                if command.startswith(SKIPPED) or (command.startswith(SLOW) and not slow):
                    continue
                if part != "all" and command.startswith(APART) != (part == "compare"):
                    continue
                run_command(command, folder)
                ran.append(command)
        plt.close("all")
    return ran


def test_every_block_is_python_or_known_commands_and_the_table_applies():
    """Nothing in the README escapes the test: each block is python or shell commands this test
    knows how to run, and each substitution of the small-size table matches the README."""
    text = README.read_text()
    for pattern in SMALL:
        assert re.search(pattern, text), f"SMALL pattern {pattern!r} no longer matches README"
    blocks = code_blocks(text)
    assert sum(language == "python" for _, language, _ in blocks) >= 4
    for line, language, code in blocks:
        assert language in ("python", ""), f"block at line {line}: language {language!r}"
        if language == "":
            for command in shell_commands(code):
                assert command.startswith(COMMANDS), f"line {line}: {command!r}"


@pytest.mark.parametrize("part, files", [
    ("first", ("run.nc", "fig.png", "runs.zarr", "store.png", "phase.nc")),
    ("second", ("d.nc", "m.nc", "digits_curves.png", "rank.nc", "rank.png", "out.json"))])
def test_readme_code_blocks_run_in_order_at_a_small_size(tmp_path, monkeypatch, part, files):
    """Every python block and every fast shell command of each half runs without error, and
    the files the blocks name are written."""
    ran = run_readme(tmp_path, monkeypatch, slow=False, part=part)
    assert ran and not any(command.startswith(APART) for command in ran)
    for name in files:
        assert (tmp_path / name).exists(), name


def test_readme_compare_commands_run_at_a_small_size(tmp_path, monkeypatch):
    """The `lazyrich compare` commands (simulation and DMFT or kernel theory) write their
    figures."""
    ran = run_readme(tmp_path, monkeypatch, slow=False, part="compare")
    assert len(ran) == 4 and all(command.startswith(APART) for command in ran), ran
    for name in ("compare.png", "lazy.png", "paper_P450.png", "paper_P550.png"):
        assert (tmp_path / name).exists(), name


@pytest.mark.slow
def test_readme_slow_commands_run(tmp_path, monkeypatch):
    """The provenance power curve and demo as written (minutes on 2 CPU cores)."""
    ran = run_readme(tmp_path, monkeypatch, slow=True)
    assert any(command.startswith(SLOW[1]) for command in ran)
