"""What every `python -m provenance` subcommand shares: one-line usage errors and output-path
checks made before any work, so a bad path costs nothing and leaves nothing behind."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit status 2), like our own errors."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def check_output_file(argument: str, path: str | os.PathLike | None) -> None:
    """Refuse (ValueError naming `argument`) a file we could not write: its folder missing or
    not writable, or the path itself an existing folder."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"{argument}: {str(path)!r} is a folder; give a file path")
    _check_folder(argument, path, target.resolve().parent)


def check_output_folder(argument: str, path: str | os.PathLike, files: tuple[str, ...]) -> None:
    """Refuse a folder we could not fill: an existing file, a missing or read-only parent, or a
    read-only folder, or one of the `files` to be written inside it already a folder."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{argument}: {str(path)!r} is a file; give a folder path")
    if not target.exists():
        _check_folder(argument, path, target.resolve().parent)
        return
    _check_folder(argument, path, target)
    for name in files:
        if (target / name).is_dir():
            raise ValueError(f"{argument}: {str(target / name)!r} is a folder, but the command "
                             f"writes a file there; move it or choose another {argument}")


def _check_folder(argument: str, path, folder: Path) -> None:
    if not folder.is_dir():
        raise ValueError(f"{argument}: cannot write {str(path)!r}: folder {str(folder)!r} does "
                         f"not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{argument}: cannot write {str(path)!r}: folder {str(folder)!r} is not "
                         f"writable")
