"""Checkpoints of the DMFT's fixed-point iteration (`dmft.checkpoint`): a solve stopped halfway
resumes to the curves of an uninterrupted one; a write killed midway leaves the previous
checkpoint whole; a file of another solve, a damaged file and unusable paths are refused naming
`checkpoint=`; two solves sharing one checkpoint take turns."""

from __future__ import annotations

import json
import os
import threading
import time
import warnings

import filelock
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import cubic_decay_map

from dmft import ConvergenceWarning, grokking
from dmft.checkpoint import Checkpoint, CheckpointWarning
from dmft.fixed_point import iterate_to_fixed_point

# alpha = 1, eps = 0.1, D = 30 (the spike grows within the run), plain damping
_SMALL = {"t_max": 150.0, "dt": 5.0, "D": 30, "n_samples": 100, "n_response": 4,
          "bulk_rank": 31, "tol": 1e-9, "anderson": 0, "progress": False}


def _stopped_early(path, **changes):
    with pytest.warns(ConvergenceWarning, match="max_iter=5"):
        return grokking.solve(1.0, 0.1, 3.0, checkpoint=path, **{**_SMALL, "max_iter": 5,
                                                                 **changes})


def test_a_stopped_solve_resumes_to_the_uninterrupted_curves(tmp_path):
    """Stopped after 5 iterations, the same call with a larger max_iter goes on from the 5th
    iterate: with plain damping the iterates are the uninterrupted ones, so the curves are equal
    to the last bit and the iterations add up; called once more on the converged checkpoint it
    returns after one iteration (the checkpoint holds the curves its residual compares with),
    within tol of the same curves."""
    uninterrupted = grokking.solve(1.0, 0.1, 3.0, **_SMALL)
    path = tmp_path / "solve.npz"
    _stopped_early(path)
    with pytest.warns(ConvergenceWarning, match="went on from the 5 iterations"):
        # a second stop: its message says the run went on from the checkpoint
        grokking.solve(1.0, 0.1, 3.0, checkpoint=path, **{**_SMALL, "max_iter": 3})
    resumed = grokking.solve(1.0, 0.1, 3.0, checkpoint=path, **_SMALL)
    assert resumed.attrs["iterations"] == uninterrupted.attrs["iterations"]
    for name in ("train_loss", "test_loss", "beta_M_beta", "v_norm2"):
        np.testing.assert_array_equal(resumed[name].values, uninterrupted[name].values)
    again = grokking.solve(1.0, 0.1, 3.0, checkpoint=path, **{**_SMALL, "max_iter": 1})
    assert again.attrs["iterations"] == resumed.attrs["iterations"] + 1
    assert again.attrs["converged"] and again.attrs["residual"] <= _SMALL["tol"]
    np.testing.assert_allclose(again.test_loss.values, resumed.test_loss.values, rtol=1e-7)
    # what changes the route, not the fixed point, may differ between the calls
    loose = grokking.solve(1.0, 0.1, 3.0, checkpoint=path, **{**_SMALL, "tol": 1e-6,
                                                              "damping": 0.5})
    np.testing.assert_allclose(loose.test_loss.values, resumed.test_loss.values, rtol=1e-6)


def test_another_solves_or_a_damaged_checkpoint_is_refused_before_any_work(tmp_path):
    path = tmp_path / "solve.npz"
    _stopped_early(path)
    with pytest.raises(ValueError, match=r"checkpoint=.*another solve.*differs in alpha"):
        grokking.solve(2.0, 0.1, 3.0, checkpoint=path, **_SMALL)
    with pytest.raises(ValueError, match=r"differs in n_response, n_samples"):
        grokking.solve(1.0, 0.1, 3.0, checkpoint=path, **{**_SMALL, "n_samples": 50,
                                                          "n_response": 5})
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"checkpoint=.*damaged.npz.*not a readable"):
        grokking.solve(1.0, 0.1, 3.0, checkpoint=damaged, **_SMALL)
    with pytest.raises(ValueError, match=r"checkpoint=.*is a directory"):
        grokking.solve(1.0, 0.1, 3.0, checkpoint=tmp_path, **_SMALL)
    with pytest.raises(ValueError, match=r"checkpoint=.*folder.*does not exist"):
        grokking.solve(1.0, 0.1, 3.0, checkpoint=tmp_path / "no" / "solve.npz", **_SMALL)
    with pytest.raises(ValueError, match=r"checkpoint must be a file path"):
        grokking.solve(1.0, 0.1, 3.0, checkpoint=3, **_SMALL)


_LOOP = dict(damping=0.6, initial_damping=0.6, residual=0.5, front=4, settled_front=0)


def test_a_write_killed_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """The iterate is written to a temporary file and moved over the checkpoint: a kill inside
    the write (here a KeyboardInterrupt from np.savez after part of the file is out) leaves the
    earlier checkpoint readable and no partial file behind; a temporary file a harder kill left
    is removed by the next write; a write that fails (a full disk) warns and lets the solve go
    on."""
    path = tmp_path / "solve.npz"
    checkpoint = Checkpoint(path, {"map": "test"})
    checkpoint.save(np.ones((1, 4)), np.ones((1, 2, 4)), None, iterations=3, **_LOOP)

    def killed(handle, **arrays):
        handle.write(b"PK\x03\x04 a partial zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(np.zeros((1, 4)), np.ones((1, 2, 4)), None, iterations=9, **_LOOP)
    monkeypatch.undo()
    loaded = checkpoint.load(1, 4)
    assert loaded["iterations"] == 3 and np.all(loaded["flat"] == 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["solve.npz"]
    (tmp_path / "solve.npz.x1y2.partial").write_bytes(b"left by a SIGKILL")
    checkpoint.save(np.ones((1, 4)), np.ones((1, 2, 4)), None, iterations=4, **_LOOP)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["solve.npz"]

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dmft.checkpoint.tempfile.mkstemp", full)
    with pytest.warns(CheckpointWarning, match="checkpoint=.*No space left.*goes on"):
        assert not checkpoint.save(np.ones((1, 4)), np.ones((1, 2, 4)), None, iterations=5,
                                   **_LOOP)
    assert checkpoint.load(1, 4)["iterations"] == 4


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs a folder nobody can write in")
def test_a_folder_the_solve_cannot_write_in_is_refused_not_waited_for():
    with pytest.raises(ValueError,
                       match=r"checkpoint='/proc/solve.npz': cannot create its lock file"):
        grokking.solve(1.0, 0.1, 3.0, checkpoint="/proc/solve.npz", **_SMALL)


def test_a_keyboard_interrupt_keeps_the_iteration(x64, tmp_path, monkeypatch):
    """^C during the iteration writes the last consistent iterate before it stops the solve;
    the same call again ends where an uninterrupted one does."""
    import dmft.fixed_point as fixed_point

    step, exact = cubic_decay_map(40, 0.05)
    checkpoint = Checkpoint(tmp_path / "toy.npz", {"map": "cubic decay, 40 x 0.05"})
    settings = dict(damping=0.6, tol=1e-12, max_iter=2000, progress=False, what="test",
                    knobs="")
    real = fixed_point.tqdm

    class Interrupted(real):     # ^C after the 6th iteration's bar update
        updates = 0

        def update(self, count=1):
            Interrupted.updates += 1
            if Interrupted.updates > 6:
                raise KeyboardInterrupt
            return super().update(count)

    monkeypatch.setattr(fixed_point, "tqdm", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        iterate_to_fixed_point(step, {"x": jnp.zeros((1, 40))}, lambda out: out["x"],
                               checkpoint=checkpoint, **settings)
    monkeypatch.setattr(fixed_point, "tqdm", real)
    assert checkpoint.load(1, 40)["iterations"] == 6
    whole = iterate_to_fixed_point(step, {"x": jnp.zeros((1, 40))}, lambda out: out["x"],
                                   **settings)
    state, _, iterations, _ = iterate_to_fixed_point(
        step, {"x": jnp.zeros((1, 40))}, lambda out: out["x"], checkpoint=checkpoint, **settings)
    assert iterations == whole[2]
    np.testing.assert_array_equal(np.asarray(state["x"]), np.asarray(whole[0]["x"]))


def test_time_windows_are_resumed_where_they_stopped(x64, tmp_path):
    """Stopped every 10 iterations while its time windows grow, the iteration resumes in the
    window it had reached (the checkpoint records it) and ends at the march's solution, in about
as many iterations as without stops."""
    step, exact = cubic_decay_map(400, 0.05)
    settings = dict(damping=0.6, tol=1e-12, max_iter=10, progress=False, what="test",
                    knobs="", horizon={"x": np.arange(400)})
    checkpoint = Checkpoint(tmp_path / "toy.npz", {"map": "cubic decay, 400 x 0.05"})
    fronts, residual = [], np.inf
    while residual > 1e-12:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            state, _, iterations, residual = iterate_to_fixed_point(
                step, {"x": jnp.zeros((1, 400))}, lambda out: out["x"],
                checkpoint=checkpoint, **settings)
        with np.load(checkpoint.path) as saved:
            fronts.append(json.loads(str(saved["header"]))["loop"]["front"])
        assert len(fronts) < 50
    assert min(fronts) < 400 and fronts[-1] == 400 and fronts == sorted(fronts)
    np.testing.assert_allclose(np.asarray(state["x"][0]), exact, atol=1e-10)
    # each resumption costs at most a couple of iterations (its first has no residual yet)
    whole = iterate_to_fixed_point(step, {"x": jnp.zeros((1, 400))}, lambda out: out["x"],
                                   **{**settings, "max_iter": 2000})
    assert iterations <= whole[2] + 2 * len(fronts), (iterations, whole[2], len(fronts))


def test_two_solves_sharing_a_checkpoint_take_turns(x64, tmp_path, capsys):
    """While one iteration holds the checkpoint's lock another waits (saying so), then starts
    from the first one's end."""
    step, exact = cubic_decay_map(40, 0.05)
    checkpoint = Checkpoint(tmp_path / "toy.npz", {"map": "cubic decay, 40 x 0.05"})
    settings = dict(damping=0.6, tol=1e-12, max_iter=2000, progress=False, what="test",
                    knobs="")
    results = []
    lock = filelock.FileLock(str(checkpoint.path) + ".lock")
    lock.acquire()
    waiting = threading.Thread(target=lambda: results.append(iterate_to_fixed_point(
        step, {"x": jnp.zeros((1, 40))}, lambda out: out["x"], checkpoint=checkpoint,
        **settings)))
    waiting.start()
    time.sleep(1.0)
    assert waiting.is_alive() and not results      # held up by the lock
    lock.release()
    waiting.join(timeout=60)
    assert "in use by another solve" in capsys.readouterr().err
    np.testing.assert_allclose(np.asarray(results[0][0]["x"][0]), exact, atol=1e-10)
