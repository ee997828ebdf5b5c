"""Shared fixtures: a float64 switch and a tiny grokking configuration; and a compilation
cache shared by the test processes.

Most of the suite's time is XLA compiling, and many tests compile the same program from a fresh
closure (a new sweep of the same shapes), which JAX's in-memory cache does not see. JAX's
persistent cache keys programs by their HLO, compile options and jax / jaxlib version, so the
pytest-xdist workers share what any of them compiled. It lives in `.pytest_cache/jax` (ignored
by git; `make clean` removes it). Set LAZYRICH_TEST_JAX_CACHE=0 to compile everything afresh.
"""

import functools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def pytest_configure(config):
    if os.environ.get("LAZYRICH_TEST_JAX_CACHE", "1") == "0":
        return
    folder = Path(config.rootpath) / ".pytest_cache" / "jax"
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

TINY = {"D": 10, "N": 32, "P": 40, "n_test": 50, "steps": 200, "log_every": 20}


@pytest.fixture
def x64():
    """Run the test with jax_enable_x64 on, restoring the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture
def compiled():
    """compiled(function, **fixed): `function` with the keyword arguments `fixed` bound
    (scalars, block sizes) and compiled as one program. Called op by op, a march of the DMFT
    paths compiles hundreds of small programs (~37 ms each on 2 cores), several times the cost
    of compiling it whole."""
    return lambda function, **fixed: jax.jit(functools.partial(function, **fixed))


def cubic_decay_map(n: int, h: float):
    """The forward-Euler march of x' = -x^3, x(0) = 1 written as a causal whole-trajectory
    map F(x)_k = 1 - h sum_{j<k} x_j^3, and its solution by the march itself (float64)."""
    def step(state):
        x = state["x"]
        past = jnp.concatenate([jnp.zeros((x.shape[0], 1)), jnp.cumsum(x**3, axis=1)[:, :-1]],
                               axis=1)
        return {"x": 1.0 - h * past}, {"x": 1.0 - h * past}

    exact = np.ones(n)
    for k in range(1, n):
        exact[k] = exact[k - 1] - h * exact[k - 1] ** 3
    return step, exact
