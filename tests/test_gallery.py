"""The figure gallery writes real PNGs and refuses unknown names."""

import pytest

from lazyrich.views.gallery import FIGURES, make_gallery


def test_teacher_figure_is_written(tmp_path):
    (path,) = make_gallery(str(tmp_path), ["teacher"])
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "teacher.png").stat().st_size > 20_000


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
