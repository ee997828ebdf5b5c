"""Stores survive faults: damaged chunks are named and recomputed, concurrent writers take turns.

A finished-chunk marker holds checksums of what was written, so a truncated chunk file, a
deleted chunk file or a deleted variable folder is found on open (a StoreDamageWarning naming the
runs; those runs read as unfinished) and on resume (recomputed, giving the uninterrupted result
bit for bit).
"""

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import TINY

import lazyrich
from lazyrich.core.store import StoreDamageWarning

GRID = {"alpha": [0.5, 1.0, 2.0], "seed": [0, 1]}


def _chunk_files(path, variable):
    root = os.path.join(path, variable)
    return sorted(os.path.join(folder, name) for folder, _, names in os.walk(root)
                  for name in names if name != "zarr.json")


@pytest.fixture
def finished_store(tmp_path):
    path = str(tmp_path / "runs.zarr")
    fresh = lazyrich.sweep("grokking", store=path, chunk_size=2, progress=False, **GRID, **TINY)
    return path, fresh


def _resume_equals_fresh(path, fresh):
    with pytest.warns(StoreDamageWarning, match="recomputing them"):
        resumed = lazyrich.sweep("grokking", store=path, progress=False, **GRID, **TINY)
    for var in ("train_loss", "test_loss", "alignment", "diverged"):
        np.testing.assert_array_equal(resumed[var].values, fresh[var].values, err_msg=var)
    assert bool(lazyrich.open(path).finished.all())


def test_truncated_chunk_file_is_named_on_open_and_recomputed_on_resume(finished_store):
    path, fresh = finished_store
    victim = _chunk_files(path, "test_loss")[1]  # the second chunk: alpha=1.0, both seeds
    with open(victim, "r+b") as handle:
        handle.truncate(max(1, os.path.getsize(victim) // 2))
    with pytest.warns(StoreDamageWarning) as caught:
        opened = lazyrich.open(path)
    message = str(caught[0].message)
    assert "'test_loss'" in message and "alpha=1.0, seed=0" in message and path in message
    assert not bool(opened.finished.sel(alpha=1.0).any())
    assert bool(opened.finished.sel(alpha=0.5).all())
    assert np.isnan(opened.test_loss.sel(alpha=1.0).values).all()
    _resume_equals_fresh(path, fresh)


def test_deleted_chunk_file_is_damage_not_a_silent_nan(finished_store):
    path, fresh = finished_store
    os.remove(_chunk_files(path, "alignment")[2])
    with pytest.warns(StoreDamageWarning, match="'alignment' does not match"):
        lazyrich.open(path)
    _resume_equals_fresh(path, fresh)


def test_deleted_variable_folder_is_named_and_recomputed(finished_store):
    import shutil

    path, fresh = finished_store
    shutil.rmtree(os.path.join(path, "train_loss"))
    with pytest.warns(StoreDamageWarning, match="'train_loss' is missing"):
        opened = lazyrich.open(path)
    assert not bool(opened.finished.any())
    _resume_equals_fresh(path, fresh)


def test_corrupt_marker_is_damage(finished_store):
    path, fresh = finished_store
    with open(os.path.join(path, "_finished", "0_0"), "w") as handle:
        handle.write("{half a json")
    _resume_equals_fresh(path, fresh)


WRITER = textwrap.dedent("""
    import sys, time
    import lazyrich
    started = time.time()
    ds = lazyrich.sweep("grokking", store=sys.argv[1], chunk_size=1, progress=False,
                        alpha=[0.5, 1.0, 2.0, 4.0], seed=[0, 1], D=10, N=32, P=40, n_test=50,
                        steps=2000, log_every=200)
    print(float(ds.test_loss.sum()), flush=True)
""")


def test_two_writers_on_one_new_store_take_turns_and_agree(tmp_path):
    """Two processes start the same new store at once: neither crashes, neither is told to
    overwrite, the second waits for the first and reuses its chunks, and both return the same."""
    path = str(tmp_path / "shared.zarr")
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        assert "overwrite" not in err
    assert outputs[0][0] == outputs[1][0]
    assert any("being written by another process" in err for _, err in outputs)
    assert bool(lazyrich.open(path).finished.all())


def test_a_waiting_writer_resumes_after_a_killed_one(tmp_path):
    """The lock of a SIGKILLed writer is released by the system: the next writer goes on."""
    import signal

    path = str(tmp_path / "killed.zarr")
    first = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    markers = os.path.join(path, "_finished")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.isdir(markers) and os.listdir(markers)):
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = subprocess.run([sys.executable, "-c", WRITER, path], capture_output=True,
                            text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert bool(lazyrich.open(path).finished.all())
