"""`lazyrich info`: the JAX setup a sweep will run on (versions, devices, memory, precision).

The first command to run on a new machine, a GPU especially: it says whether JAX sees the
accelerator, how much memory the engine will plan chunks with, and whether float64 is on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from lazyrich.views.cli_args import OneLineParser


def info_command(argv: Sequence[str]) -> int:
    """Print `lazyrich.core.devices.describe()` as text, or as JSON with `--json`."""
    parser = OneLineParser(prog="lazyrich info", description="JAX version, backend, devices, "
                           "free memory, float64 and matmul precision of this process")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    from lazyrich.core.devices import describe, format_description

    facts = describe()
    print(json.dumps(facts, indent=1) if args.json else format_description(facts))
    return 0
