"""Progress is reported in optimisation steps from inside a chunk, not only when it ends."""

import time

import pytest

import lazyrich
from lazyrich.core import chunks, engine, progress


def test_steps_are_reported_before_the_only_chunk_finishes(monkeypatch):
    """One chunk of 4 runs x 4000 steps, logged every 400: step counts arrive while the chunk
    runs, add up to runs x steps, and the first arrives before the chunk returns."""
    reports, finished = [], []
    original = chunks.compute_chunk

    def timed(*args, **kwargs):
        values = original(*args, **kwargs)
        finished.append(time.perf_counter())
        return values

    monkeypatch.setattr(engine, "compute_chunk", timed)
    with progress.reporting(lambda n: reports.append((time.perf_counter(), n))):
        lazyrich.sweep("grokking", alpha=[0.5, 1.0], seed=[0, 1], D=10, N=32, P=40, n_test=50,
                       steps=4000, log_every=400, progress=False)
    assert len(finished) == 1
    assert sum(n for _, n in reports) == 4 * 4000
    assert len(reports) >= 10
    assert reports[0][0] < finished[0]


def test_the_bar_counts_steps_with_an_eta(capsys):
    lazyrich.sweep("grokking", alpha=[1.0, 2.0], D=10, N=32, P=40, n_test=50, steps=400,
                   log_every=40, progress=True)
    err = capsys.readouterr().err
    assert "800/800" in err and "step/s" in err and "(2 runs)" in err and "<" in err


def test_no_sink_means_no_reports():
    progress.report(10, [1, 2])  # nothing installed: a no-op, not an error


@pytest.mark.parametrize("sink_runs", [[0], [0, 1, 2]])
def test_a_report_counts_every_run_it_covers(sink_runs):
    seen = []
    with progress.reporting(seen.append):
        progress.report(7, sink_runs)
    assert seen == [7 * len(sink_runs)]
