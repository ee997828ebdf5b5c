"""What the machine offers the engine: device memory, CPU cache, matmul precision, a report.

The engine sizes its chunks from the memory its devices have free *now* (an accelerator's own
`memory_stats()`, the host's available memory on CPU), and its vmap groups on CPUs from the L2
cache; `lazyrich info` prints the same facts. The matmul precision switch lives here too: on
GPUs and TPUs XLA may compute float32 matrix products in TF32 or bfloat16 passes unless told
otherwise, so every sweep compiles under an explicit `jax.default_matmul_precision` and records it.
"""

from __future__ import annotations

import os
import platform
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lazyrich.core.checks import available_memory_bytes, format_bytes

# sweep(matmul_precision=...) -> jax.default_matmul_precision value and what it means.
MATMUL_PRECISIONS = {
    "float32": ("float32", "full float32 products (XLA 'highest'): the same numbers on every "
                           "backend up to summation order; the default"),
    "tensorfloat32": ("tensorfloat32", "TF32 products on GPUs (10-bit mantissa operands, "
                                       "float32 sums): several times faster on Ampere and later"),
    "bfloat16": ("bfloat16", "XLA's DEFAULT: one bfloat16 pass (8-bit mantissa operands, float32 "
                             "sums) on TPUs; on NVIDIA GPUs the same TF32 products as "
                             "tensorfloat32 (measured on an H200)"),
}
DEFAULT_MATMUL_PRECISION = "float32"
# Mantissa bits (after the leading 1) of a product's operands under each precision.
MANTISSA_BITS = {"float32": 23, "tensorfloat32": 10, "bfloat16": 7}
FALLBACK_CACHE_BYTES = 2 << 20


class MemoryReport(NamedTuple):
    """Free memory for one chunk's compiled program, and where the number came from."""

    free_bytes: int
    source: str  # e.g. "host MemAvailable" or "cuda:0 memory_stats"


def check_matmul_precision(value: Any) -> str:
    """The precision name, or ValueError naming the allowed ones."""
    if not isinstance(value, str) or value not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision={value!r} is not one of "
                         f"{', '.join(map(repr, MATMUL_PRECISIONS))}")
    return value


def matmul_precision_context(name: str):
    """Context manager under which traced matmuls use precision `name` (see MATMUL_PRECISIONS)."""
    return jax.default_matmul_precision(MATMUL_PRECISIONS[check_matmul_precision(name)][0])


def _memory_stats(device) -> dict | None:
    """The device allocator's statistics, or None where the backend keeps none (CPUs; a
    backend whose call raises an AttributeError or a RuntimeError)."""
    try:
        return device.memory_stats()
    except (AttributeError, RuntimeError):
        return None


def _device_free_bytes(device) -> int | None:
    """Free bytes of an accelerator from its allocator's statistics; None where it has none."""
    stats = _memory_stats(device)
    if not stats or "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


def device_memory() -> MemoryReport:
    """Memory a chunk's compiled program may use on the local devices.

    On accelerators: the smallest free memory over the local devices (a chunk is sharded evenly
    over them) from `device.memory_stats()`; on CPU, or a backend without statistics: the host's
    available memory (`lazyrich.core.checks.available_memory_bytes`). `LAZYRICH_MEMORY_BYTES`
    overrides both (tests, shared machines).
    """
    if os.environ.get("LAZYRICH_MEMORY_BYTES"):
        return MemoryReport(available_memory_bytes(), "LAZYRICH_MEMORY_BYTES")
    devices = jax.local_devices()
    free = [_device_free_bytes(d) for d in devices]
    if devices[0].platform != "cpu" and all(f is not None for f in free):
        return MemoryReport(min(free), f"{devices[0].platform} memory_stats "
                                       f"({len(devices)} device(s), smallest free)")
    return MemoryReport(available_memory_bytes(), "host available memory")


def cpu_cache_bytes() -> int:
    """The per-core L2 cache of this CPU in bytes (sysfs), or 2 MiB where it cannot be read."""
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(root)):
            with open(os.path.join(root, entry, "level")) as handle:
                level = handle.read().strip()
            with open(os.path.join(root, entry, "type")) as handle:
                kind = handle.read().strip()
            if level == "2" and kind in ("Unified", "Data"):
                with open(os.path.join(root, entry, "size")) as handle:
                    return _parse_size(handle.read().strip())
    except (OSError, ValueError):
        pass
    return FALLBACK_CACHE_BYTES


def _parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def describe() -> dict[str, Any]:
    """Facts about this process's JAX setup, as printed by `lazyrich info` (JSON-ready)."""
    from lazyrich import __version__

    devices = []
    for device in jax.devices():
        stats = _memory_stats(device)
        entry = {"id": device.id, "platform": device.platform,
                 "kind": getattr(device, "device_kind", str(device))}
        if stats and "bytes_limit" in stats:
            entry["memory_total_bytes"] = int(stats["bytes_limit"])
            entry["memory_free_bytes"] = int(stats["bytes_limit"]) - int(
                stats.get("bytes_in_use", 0))
        devices.append(entry)
    memory = device_memory()
    return {
        "lazyrich": __version__,
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": devices,
        "chunk_memory_bytes": memory.free_bytes,
        "chunk_memory_source": memory.source,
        "float64": bool(jax.config.read("jax_enable_x64")),
        "default_float": str(jnp.result_type(float)),
        "matmul_precision": DEFAULT_MATMUL_PRECISION,
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "cpu_count": os.cpu_count(),
        "cpu_l2_cache_bytes": cpu_cache_bytes(),
    }


def _jaxlib_version() -> str | None:
    try:
        import jaxlib

        return jaxlib.__version__
    except (ImportError, AttributeError):
        return None


def format_description(facts: dict[str, Any]) -> str:
    """`describe()` as the lines `lazyrich info` prints."""
    lines = [f"lazyrich {facts['lazyrich']}, jax {facts['jax']} (jaxlib {facts['jaxlib']}), "
             f"python {facts['python']}",
             f"backend: {facts['backend']}, {len(facts['devices'])} device(s)"]
    for device in facts["devices"]:
        memory = ""
        if "memory_total_bytes" in device:
            memory = (f": {format_bytes(device['memory_free_bytes'])} free of "
                      f"{format_bytes(device['memory_total_bytes'])}")
        lines.append(f"  {device['platform']}:{device['id']} {device['kind']}{memory}")
    lines += [f"memory for a sweep's chunks: {format_bytes(facts['chunk_memory_bytes'])} "
              f"({facts['chunk_memory_source']})",
              f"float64: {'on' if facts['float64'] else 'off'} (default float "
              f"{facts['default_float']}; turn on with JAX_ENABLE_X64=1 or "
              f"jax.config.update('jax_enable_x64', True))",
              f"matmul precision of sweeps: {facts['matmul_precision']} unless "
              f"sweep(matmul_precision=...) says otherwise "
              f"({', '.join(MATMUL_PRECISIONS)})",
              f"cpu: {facts['cpu_count']} cores, L2 cache "
              f"{format_bytes(facts['cpu_l2_cache_bytes'])} per core"]
    return "\n".join(lines)
