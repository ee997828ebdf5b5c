"""Bad input to the `lazyrich` command line: exit 2, one line on stderr, nothing written."""

import pytest


@pytest.mark.parametrize("argv", [
    ["run", "grokking", "--alpha", "-1", "--out", "x.nc"],
    ["run", "grokking", "--steps", "10", "--log_every", "3", "--out", "x.nc"],
    ["run", "teacher", "--activation", "tanh", "--out", "x.nc"],
    ["compare", "teacher", "--out", "x.png"],
])
def test_command_line_exits_non_zero_with_one_line_and_writes_nothing(argv, tmp_path,
                                                                      monkeypatch, capsys):
    from lazyrich.views.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
