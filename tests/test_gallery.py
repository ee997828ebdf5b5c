"""The figure gallery writes real PNGs and refuses unknown names."""

import pytest

from lazyrich.views.gallery import FIGURES, make_gallery


def test_teacher_figure_is_written_and_its_stages_reported(tmp_path, capsys):
    """`lazyrich gallery --only teacher` announces the figure as it starts, times it, and ends
    with the file it wrote."""
    from lazyrich.views.cli import main

    out = tmp_path / "figures"
    assert main(["gallery", "--only", "teacher", "--out", str(out)]) == 0
    path = out / "teacher.png"
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("lazyrich gallery: [1/1] teacher: Online SGD") and \
        lines[0].endswith("...")
    assert " done in " in lines[1]
    assert lines[-2:-1] == [f"lazyrich gallery: wrote {path}"]
    assert lines[-1].startswith("lazyrich gallery: finished in ")


def test_unknown_figures_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown gallery figures"):
        make_gallery(str(tmp_path), ["nonsense"])
    assert {"grokking", "digits", "modular", "teacher", "rank_sweep", "linear_rank"} <= set(FIGURES)


@pytest.mark.slow
def test_digits_and_modular_figures_are_written(tmp_path):
    """The grokking-delay figures (about a minute together on 2 CPU cores)."""
    paths = make_gallery(str(tmp_path), ["digits", "modular"])
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["digits.png", "modular.png"]
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
