"""Chunks as Ray tasks on a local Ray instance give the in-process results bit for bit."""

import numpy as np
import pytest
from conftest import TINY

import lazyrich

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_executor_matches_in_process_and_streams_into_a_store(local_ray, tmp_path):
    grid = {"alpha": [0.5, 1.0, 2.0], "seed": [0, 1], "N": [16, 32]}
    params = {**{k: v for k, v in TINY.items() if k != "N"}, **grid}
    local = lazyrich.sweep("grokking", chunk_size=2, progress=False, **params)
    remote = lazyrich.sweep("grokking", chunk_size=2, executor="ray", progress=False,
                            store=str(tmp_path / "ray.zarr"), **params)
    for var in ("train_loss", "test_loss", "alignment", "diverged"):
        np.testing.assert_array_equal(remote[var].values, local[var].values, err_msg=var)
    assert bool(lazyrich.open(str(tmp_path / "ray.zarr")).finished.all())


def test_bad_executor_is_refused():
    with pytest.raises(TypeError, match="executor=3"):
        lazyrich.sweep("grokking", executor=3, progress=False, **TINY)


def test_a_killed_worker_has_its_chunk_retried(local_ray):
    """SIGKILL the Ray worker process while it computes a chunk: Ray reruns the task and the
    sweep still returns the in-process result."""
    import os
    import signal
    import threading
    import time

    import psutil

    params = dict(alpha=[0.5, 1.0, 2.0, 4.0], seed=[0, 1], D=10, N=32, P=40, n_test=50,
                  steps=20_000, log_every=2000, chunk_size=2, progress=False)
    killed = []

    def kill_a_busy_worker():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for process in psutil.process_iter(["pid", "cmdline"]):
                if "ray::_task" in " ".join(process.info["cmdline"] or []):
                    time.sleep(0.5)  # let it get into the computation
                    os.kill(process.info["pid"], signal.SIGKILL)
                    killed.append(process.info["pid"])
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    remote = lazyrich.sweep("grokking", executor="ray", **params)
    killer.join()
    assert killed, "no busy Ray worker was found to kill"
    local = lazyrich.sweep("grokking", **params)
    np.testing.assert_array_equal(remote.test_loss.values, local.test_loss.values)
