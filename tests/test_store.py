"""Stores: chunks written as they finish, resume after a kill, refusal of other configurations."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import TINY

import lazyrich
from lazyrich.core.store import SweepStore

GRID = {"alpha": [0.5, 1.0, 2.0, 4.0], "seed": [0, 1, 2]}


def test_store_result_equals_the_in_memory_result_and_opens(tmp_path):
    path = str(tmp_path / "runs.zarr")
    stored = lazyrich.sweep("grokking", store=path, chunk_size=5, progress=False, **GRID, **TINY)
    memory = lazyrich.sweep("grokking", chunk_size=5, progress=False, **GRID, **TINY)
    for var in ("train_loss", "test_loss", "alignment", "diverged"):
        np.testing.assert_array_equal(stored[var].values, memory[var].values)
    opened = lazyrich.open(path)
    assert bool(opened.finished.all())
    np.testing.assert_array_equal(opened.test_loss.values, memory.test_loss.values)
    assert opened.attrs["config"] == memory.attrs["config"]


def test_resume_reads_finished_chunks_instead_of_rerunning(tmp_path, monkeypatch):
    """A second call on a complete store computes and writes nothing, and returns the same."""
    path = str(tmp_path / "runs.zarr")
    first = lazyrich.sweep("grokking", store=path, chunk_size=4, progress=False, **GRID, **TINY)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished chunk was recomputed")

    monkeypatch.setattr(SweepStore, "write_chunk", refuse)
    again = lazyrich.sweep("grokking", store=path, progress=False, **GRID, **TINY)
    np.testing.assert_array_equal(again.test_loss.values, first.test_loss.values)


@pytest.mark.parametrize("change,fragment", [
    ({"alpha": [0.5, 1.0]}, "sweep axis 'alpha' differs"),
    ({"eps": 0.05}, "parameter 'eps' differs"),
    ({"chunk_size": 3}, "chunk_size differs"),
])
def test_store_from_another_configuration_is_refused_unless_overwritten(tmp_path, change,
                                                                        fragment):
    path = str(tmp_path / "runs.zarr")
    lazyrich.sweep("grokking", store=path, chunk_size=4, progress=False, **GRID, **TINY)
    params = {**GRID, **TINY, "chunk_size": 4, **change}
    with pytest.raises(ValueError, match=fragment):
        lazyrich.sweep("grokking", store=path, progress=False, **params)
    replaced = lazyrich.sweep("grokking", store=path, overwrite=True, progress=False, **params)
    assert lazyrich.open(path).sizes["alpha"] == replaced.sizes["alpha"]


def test_a_path_that_is_not_a_store_is_refused(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("not a store")
    with pytest.raises(ValueError, match="not a directory"):
        lazyrich.sweep("grokking", store=str(path), progress=False, **TINY)
    with pytest.raises(ValueError, match="not a lazyrich sweep store"):
        lazyrich.open(str(tmp_path))


SCRIPT = textwrap.dedent("""
    import sys
    import lazyrich
    lazyrich.sweep("grokking", store=sys.argv[1], chunk_size=1, progress=False,
                   alpha=[0.5, 1.0, 2.0, 4.0, 8.0, 16.0], seed=[0, 1], D=10, N=32, P=40,
                   n_test=50, steps=4000, log_every=400)
""")


def finished_markers(markers: str) -> int:
    """How many chunks a store has marked finished (a marker still being written ends in .tmp)."""
    if not os.path.isdir(markers):
        return 0
    return len([name for name in os.listdir(markers) if not name.endswith(".tmp")])


def test_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL a multi-chunk sweep mid-run; the same call resumes and the final Dataset equals
    an uninterrupted run with the same chunk size bit for bit."""
    path = str(tmp_path / "killed.zarr")
    markers = os.path.join(path, "_finished")
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, path])
    deadline = time.time() + 120
    while time.time() < deadline:
        if finished_markers(markers) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = finished_markers(markers)
    assert 3 <= done < 12, done
    assert not bool(lazyrich.open(path).finished.all())
    params = dict(alpha=[0.5, 1.0, 2.0, 4.0, 8.0, 16.0], seed=[0, 1], D=10, N=32, P=40,
                  n_test=50, steps=4000, log_every=400, chunk_size=1, progress=False)
    resumed = lazyrich.sweep("grokking", store=path, **params)
    fresh = lazyrich.sweep("grokking", **params)
    for var in ("train_loss", "test_loss", "alignment", "param_movement", "diverged"):
        np.testing.assert_array_equal(resumed[var].values, fresh[var].values, err_msg=var)
