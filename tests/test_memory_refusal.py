"""Sweeps that would not fit in memory are refused before anything large is allocated.

Each case runs in a subprocess whose address space is capped (`RLIMIT_AS`): a sweep that tried
to allocate its arrays would die with a MemoryError or be killed, while the engine's estimate
(from the compiled chunk program's own memory analysis) refuses it with the numbers and the
parameter to change.
"""

import subprocess
import sys
import textwrap

import pytest
from conftest import TINY

import lazyrich
from lazyrich.core.checks import MemoryEstimateError, format_bytes, require_memory

LIMITED = textwrap.dedent("""
    import resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    import lazyrich
    started = time.time()
    try:
        lazyrich.sweep("grokking", progress=False, **eval(sys.argv[1]))
    except MemoryError as error:
        print("REFUSED", round(time.time() - started, 1), error)
    else:
        print("RAN")
""")


@pytest.mark.parametrize("params,fragment", [
    ({"D": 46000, "N": 2, "P": 2, "n_test": 2, "steps": 2, "log_every": 1}, "D=46000"),
    ({"N": 10**7, "steps": 2, "log_every": 1}, "N=10000000"),
    ({"alpha": [1.0, 2.0], "seed": list(range(50)), "D": 10, "N": 4, "P": 4, "n_test": 4,
      "steps": 4_000_000, "log_every": 1}, "raise log_every="),
])
def test_sweep_too_large_for_memory_is_refused_early(params, fragment):
    completed = subprocess.run([sys.executable, "-c", LIMITED, repr(params)],
                               capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-2000:]
    out = completed.stdout
    assert out.startswith("REFUSED"), out + completed.stderr[-2000:]
    assert fragment in out and "needs about" in out and "can use" in out


def test_d_beyond_int32_squares_does_not_overflow():
    """D = 46341 (D^2 > 2^31) used to overflow in the population loss; the statistics are
    computed in floats now. Traced with abstract shapes: nothing D x D is allocated."""
    import jax

    from lazyrich.tasks.polynomial import quadratic_model_population_loss

    dim = 46341
    vector, matrix = jax.ShapeDtypeStruct((dim,), "float32"), \
        jax.ShapeDtypeStruct((dim, dim), "float32")
    out = jax.eval_shape(lambda v, m, b: quadratic_model_population_loss(v, m, b, (0.0, 0.0, 1.0)),
                         vector, matrix, vector)
    assert out.shape == ()


def test_chunk_size_is_shrunk_to_fit_when_left_to_the_engine(monkeypatch):
    """With little memory an automatic chunk shrinks; a fixed one is refused naming it."""
    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", str(600 << 20))  # 16 runs need ~980 MiB
    params = dict(alpha=[0.5, 1.0, 2.0, 4.0], seed=list(range(4)), D=40, N=20000, P=200,
                  n_test=200, steps=2, log_every=1, progress=False, dynamics="network")
    with pytest.raises(MemoryEstimateError, match="lower chunk_size= \\(now 16\\)"):
        lazyrich.sweep("grokking", chunk_size=16, vmap_size=16, **params)
    ds = lazyrich.sweep("grokking", vmap_size=16, **params)
    assert ds.sizes["seed"] == 4 and not bool(ds.diverged.any())


def test_require_memory_names_the_estimate_and_the_remedy(monkeypatch):
    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", str(1 << 30))
    require_memory(100 << 20, "small", "nothing")
    with pytest.raises(MemoryEstimateError) as info:
        require_memory(5 << 30, "a big thing", "lower dt=")
    message = str(info.value)
    assert "a big thing needs about 5.0 GiB" in message and "1.0 GiB" in message
    assert "lower dt=" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, MemoryError)
    assert format_bytes(1536) == "1.5 KiB"


def test_small_sweeps_are_not_refused():
    lazyrich.sweep("grokking", progress=False, **TINY)
