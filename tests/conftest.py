"""Shared fixtures: a float64 switch and a tiny grokking configuration."""

import jax
import pytest

TINY = {"D": 10, "N": 32, "P": 40, "n_test": 50, "steps": 200, "log_every": 20}


@pytest.fixture
def x64():
    """Run the test with jax_enable_x64 on, restoring the previous setting afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)
