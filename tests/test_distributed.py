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
