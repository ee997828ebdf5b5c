"""Chunk and vmap-group sizes come from the device's reported memory and the CPU's cache.

The memory report and the cache size are faked (monkeypatched), so these checks mean the same on
any machine: the engine plans `floor(0.8 x free / per-run estimate)` runs per chunk, groups of
`L2 / state` runs on CPUs, records its choice in `attrs["chunk_plan"]`, and refuses a budget too
small for one run naming the sizes to lower.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from conftest import TINY

import lazyrich
from lazyrich.core import checks, devices, engine, plan
from lazyrich.core.grid import make_grid

GRID = dict(alpha=[0.5, 1.0, 2.0, 4.0], seed=[0, 1, 2, 3, 4], progress=False, **TINY)


def _per_run_and_state() -> tuple[int, int]:
    grid = make_grid(lazyrich.get_experiment("grokking"),
                     {k: v for k, v in GRID.items() if k != "progress"})
    (_, static), = grid.static_points()
    state = plan._state_bytes(grid, static)
    n_log = static["steps"] // static["log_every"] + 1
    return 4 * state + 8 * n_log * len(grid.experiment.outputs), state


def _fake_memory(monkeypatch, free_bytes: int) -> None:
    report = devices.MemoryReport(free_bytes, "gpu memory_stats (faked)")
    monkeypatch.setattr(engine, "device_memory", lambda: report)


def test_chunks_and_groups_follow_the_reported_memory_and_cache(monkeypatch):
    per_run, state = _per_run_and_state()
    monkeypatch.setattr(plan, "cpu_cache_bytes", lambda: 3 * state)
    _fake_memory(monkeypatch, int(7.5 * per_run / checks.MEMORY_FRACTION))
    ds = lazyrich.sweep("grokking", **GRID)
    chosen = json.loads(ds.attrs["chunk_plan"])
    assert chosen["chunk_size"] == 7 and chosen["vmap_size"] == 3
    assert chosen["chosen_by"] == "memory budget"
    assert chosen["memory_source"] == "gpu memory_stats (faked)"
    reference = lazyrich.sweep("grokking", chunk_size=20, **GRID)
    assert float(abs(ds.test_loss - reference.test_loss).max()) <= 1e-6 * float(
        abs(reference.test_loss).max())


def test_caller_chunk_size_and_auto_are_recorded(monkeypatch):
    ds = lazyrich.sweep("grokking", chunk_size=4, vmap_size=2, **GRID)
    assert json.loads(ds.attrs["chunk_plan"])["chunk_size"] == 4
    assert json.loads(ds.attrs["chunk_plan"])["chosen_by"] == "caller"
    auto = lazyrich.sweep("grokking", chunk_size="auto", **GRID)
    assert json.loads(auto.attrs["chunk_plan"])["chosen_by"] == "memory budget"
    with pytest.raises(ValueError, match=r"chunk_size='big' is not a positive integer or 'auto'"):
        lazyrich.sweep("grokking", chunk_size="big", **GRID)


def test_budget_too_small_for_one_run_names_the_sizes(monkeypatch):
    _fake_memory(monkeypatch, 64 << 10)
    with pytest.raises(checks.MemoryEstimateError, match=r"a single run does not fit: lower its "
                                                         r"sizes \(D=\d+, N=\d+, P=\d+"):
        lazyrich.sweep("grokking", **GRID)


def test_device_memory_reads_the_smallest_free_accelerator(monkeypatch):
    def fake(free, limit=80 << 30):
        return SimpleNamespace(platform="gpu", memory_stats=lambda: {
            "bytes_limit": limit, "bytes_in_use": limit - free})

    monkeypatch.delenv("LAZYRICH_MEMORY_BYTES", raising=False)
    monkeypatch.setattr(devices.jax, "local_devices", lambda: [fake(30 << 30), fake(20 << 30)])
    report = devices.device_memory()
    assert report.free_bytes == 20 << 30 and "gpu memory_stats" in report.source
    monkeypatch.setattr(devices.jax, "local_devices",
                        lambda: [SimpleNamespace(platform="cpu", memory_stats=lambda: None)])
    assert devices.device_memory().source == "host available memory"
    monkeypatch.setenv("LAZYRICH_MEMORY_BYTES", str(5 << 30))
    assert devices.device_memory() == devices.MemoryReport(5 << 30, "LAZYRICH_MEMORY_BYTES")
