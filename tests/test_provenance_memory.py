"""provenance refuses work that would not fit in memory before allocating it (issue 13, item 5).

Every entry point that allocates in proportion to its input (span index, text matching,
permutation nulls, synthetic data, power curves, the demo) estimates its peak from shapes and
raises `MemoryEstimateError` naming the parameter to change. Tests set LAZYRICH_MEMORY_BYTES or
an address-space limit (`resource.setrlimit(RLIMIT_AS)`) in a subprocess.
"""

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import provenance as pv
from lazyrich.core.checks import MemoryEstimateError
from provenance import demo
from provenance.observational import span_index_bytes
from provenance.simulate import palimpsest_bytes

SMALL = "1000000"  # 1 MB: far below every case below, far above what a refusal allocates


def _refuses_without_allocating(call, fragments):
    """call() raises MemoryEstimateError naming `fragments`, and allocates < 1 MB first."""
    tracemalloc.start()
    try:
        with pytest.raises(MemoryEstimateError) as info:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    assert peak < 1_000_000, peak


@pytest.mark.parametrize("name", ["index", "index_flat", "matches", "spearman", "kendall",
                                  "palimpsest", "power_curve", "demo"])
def test_refused_before_allocation_with_the_knob_named(name, monkeypatch):
    """Under a 1 MB budget each call is refused with its estimate and the parameter to lower,
    before it allocates (tracemalloc's peak during the call stays under 1 MB)."""
    tokens = np.arange(200_000) % 97
    examples = list(tokens.reshape(2000, 100))
    index = pv.build_span_index(examples[:10], max_length=4)
    x = np.arange(1000.0)
    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", SMALL)
    calls = {
        "index": (lambda: pv.build_span_index(examples), ["max_length=", "min_length=",
                                                          "200000 tokens"]),
        "index_flat": (lambda: pv.build_span_index(tokens, offsets=np.arange(0, 200_001, 100)),
                       ["max_length="]),
        "matches": (lambda: pv.longest_matches(index, tokens), ["200000 text tokens"]),
        "spearman": (lambda: pv.spearman(x, x, method="permutation", n_permutations=10**6),
                     ["n_permutations=1000000", "method='asymptotic'"]),
        "kendall": (lambda: pv.kendall(x, x, method="permutation", n_permutations=10**6),
                    ["n_permutations="]),
        "palimpsest": (lambda: pv.palimpsest(10_000, 1.0, n_draws=1000), ["n_draws= (now 1000)"]),
        "power_curve": (lambda: pv.power_curve([0.1], [10_000], n_draws=1000), ["n_draws="]),
        "demo": (lambda: demo.require_demo_memory(demo.SIZES["default"]), ["--documents"]),
    }
    call, fragments = calls[name]
    _refuses_without_allocating(call, fragments)


def test_span_index_estimate_bounds_the_measured_peak():
    """span_index_bytes is an upper estimate of build_span_index's peak, within a factor 2."""
    rng = np.random.default_rng(0)
    examples = list(rng.integers(0, 256, size=(500, 100)))
    for low, high in ((2, 8), (4, 4)):
        tracemalloc.start()
        pv.build_span_index(examples, min_length=low, max_length=high)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        estimate = span_index_bytes(50_000, low, high)
        assert peak <= estimate <= 2 * peak, (low, high, peak, estimate)


def test_palimpsest_estimate_bounds_the_measured_peak():
    """palimpsest_bytes is an upper estimate of palimpsest's peak, within a factor 2."""
    tracemalloc.start()
    pv.palimpsest(5000, [0.0, 0.5, 1.0], n_draws=20)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    estimate = palimpsest_bytes(5000, 3, 20)
    assert peak <= estimate <= 2 * peak, (peak, estimate)


def test_address_space_limit_refuses_index_before_allocating():
    """Under RLIMIT_AS (256 MB above what the process maps), an index that needs ~1.3 GB is
    refused with MemoryEstimateError naming max_length, not killed or failed inside numpy."""
    script = textwrap.dedent("""
        import resource, tracemalloc
        import numpy as np
        import provenance as pv
        from lazyrich.core.checks import MemoryEstimateError, _mapped_bytes

        tokens = np.arange(4_000_000) % 251
        offsets = np.arange(0, 4_000_001, 100)
        limit = _mapped_bytes() + 256 * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        tracemalloc.start()
        try:
            pv.build_span_index(tokens, offsets=offsets, min_length=2, max_length=8)
        except MemoryEstimateError as error:
            print("refused", tracemalloc.get_traced_memory()[1], error)
        else:
            print("built")
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert completed.returncode == 0, completed.stderr
    word, peak, message = completed.stdout.split(" ", 2)
    assert word == "refused" and int(peak) < 1_000_000, completed.stdout
    assert "max_length= (now 8)" in message and "4000000 tokens" in message


def test_demo_command_refuses_before_any_work(tmp_path):
    """`python -m provenance demo` under a 1 MB budget exits 2 with one line naming --documents
    and creates no output folder."""
    out_dir = tmp_path / "demo"
    completed = subprocess.run(
        [sys.executable, "-m", "provenance", "demo", "--out-dir", str(out_dir)],
        capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "LAZYRICH_MEMORY_BYTES": SMALL})
    assert completed.returncode == 2, completed
    assert len(completed.stderr.strip().splitlines()) == 1 and "--documents" in completed.stderr
    assert not out_dir.exists()
