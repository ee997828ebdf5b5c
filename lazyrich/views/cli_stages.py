"""Stage reports of the long `lazyrich` commands (demo, compare, gallery).

Each stage prints one line on stdout as it starts and one with its elapsed time when it ends,
so a command that runs for minutes says what it is doing; the command ends with the files it
wrote and its total time. The lines go to stdout (flushed) and errors to stderr, so a failed
command still has exactly one line on stderr.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence


class Stages:
    """Numbered stages of one command: `with stages.stage("simulation"): ...`, then
    `stages.wrote(paths)`."""

    def __init__(self, command: str, total: int, stream=None):
        self.command = command
        self.total = total
        self.count = 0
        self.stream = stream
        self.started = time.perf_counter()

    def _print(self, text: str) -> None:
        print(f"{self.command}: {text}", file=self.stream or sys.stdout, flush=True)

    @contextlib.contextmanager
    def stage(self, text: str) -> Iterator[None]:
        """Report `text` as stage k of n now, and its elapsed time when the block ends."""
        self.count += 1
        label = f"[{self.count}/{self.total}] {text}"
        self._print(f"{label} ...")
        started = time.perf_counter()
        yield
        self._print(f"{label}: done in {time.perf_counter() - started:.1f} s")

    def wrote(self, paths: Sequence[str]) -> None:
        """End the command: every file it wrote, and the total time."""
        for path in paths:
            self._print(f"wrote {path}")
        self._print(f"finished in {time.perf_counter() - self.started:.1f} s")
