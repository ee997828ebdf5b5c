"""Argument handling shared by the `lazyrich` subcommands: one-line usage errors, repeated
flags, and output paths checked before any work.

A command that would fail only when it writes its result (a missing folder, a suffix nothing can
write) is refused here, before a sweep or a theory has run for minutes, with one line that names
the flag, the value received and what is allowed.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections import Counter
from collections.abc import Sequence

NETCDF_SUFFIXES = ("nc",)


class UsageError(ValueError):
    """Bad command-line input; `main` prints it as one line and exits with status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError (one line, no usage block) and which
    refuses a flag given twice instead of silently keeping the last value."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        if message.startswith("unrecognized arguments"):
            flags = [token.split("=", 1)[0] for token in message.split(":", 1)[1].split()
                     if token.startswith("--")]
            close = [difflib.get_close_matches(flag, self._option_string_actions, n=1)
                     for flag in flags]
            hints = [f"{flag} -> {match[0]}" for flag, match in zip(flags, close, strict=True)
                     if match]
            if hints:
                message += f" (did you mean: {', '.join(hints)}?)"
            message += f" (`{self.prog} --help` lists the accepted flags and their values)"
        raise UsageError(message)

    def parse_args(self, args: Sequence[str] | None = None, namespace=None):
        args = list(args or [])
        refuse_repeated_flags(args, self._option_string_actions)
        return super().parse_args(args, namespace)


def refuse_repeated_flags(argv: Sequence[str], known: dict) -> None:
    """Raise UsageError if any known flag appears more than once (`--alpha 1 --alpha 2`,
    `--out=a --out b`): argparse would keep the last one and drop the other values unnoticed."""
    end = argv.index("--") if "--" in argv else len(argv)
    counts = Counter(flag for flag in (token.split("=", 1)[0] for token in argv[:end])
                     if flag.startswith("-") and flag in known)
    for flag, count in counts.items():
        if count > 1:
            action = known[flag]
            hint = (f"give all its values after one {flag} (e.g. {flag} 1 2)"
                    if action.nargs in ("+", "*") else f"give {flag} once")
            raise UsageError(f"{flag} was given {count} times; {hint}")


def image_suffixes() -> tuple[str, ...]:
    """File suffixes matplotlib can write (png, pdf, svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(sorted(FigureCanvasBase.get_supported_filetypes()))


def _writable_folder(flag: str, path: str, folder: str) -> None:
    if not os.path.exists(folder):
        raise UsageError(f"{flag} {path!r}: the folder {folder!r} does not exist; create it or "
                         f"give a path in an existing folder")
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path!r}: {folder!r} is a file, not a folder; give a path in "
                         f"an existing folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path!r}: the folder {folder!r} is not writable; give a path "
                         f"in a folder you can write to")


def check_output_file(flag: str, path: str, suffixes: Sequence[str]) -> None:
    """Refuse an output file whose suffix is not in `suffixes` or whose folder does not exist or
    is not writable, or which is an existing folder."""
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in suffixes:
        raise UsageError(f"{flag} {path!r}: the file suffix must be one of "
                         f"{', '.join('.' + s for s in suffixes)}")
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is an existing folder; give a file name")
    _writable_folder(flag, path, os.path.dirname(os.path.abspath(path)))


def check_output_folder(flag: str, path: str) -> None:
    """Refuse an output folder that is a file, or that does not exist and cannot be made in
    its parent (the parent must exist and be writable: a typo should not create a tree)."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise UsageError(f"{flag} {path!r} is a file; give a folder (it is created if its "
                             f"parent exists)")
        _writable_folder(flag, path, path)
        return
    _writable_folder(flag, path, os.path.dirname(os.path.abspath(path)))


def check_input_file(flag: str, path: str) -> None:
    """Refuse an input path that does not exist."""
    if not os.path.exists(path):
        raise UsageError(f"{flag} {path!r} does not exist; give a netCDF file written by "
                         f"`lazyrich run --out` or a store written by `lazyrich run --store`")


def one_line(error: BaseException) -> str:
    """An exception's message on one line (library messages may wrap)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__
