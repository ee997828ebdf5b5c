"""On-disk, memory-mapped suffix-array span index for the span-overlap test at 1e8 tokens.

Kuditipudi et al. (2025), observational setting: the span-overlap test needs, for every position
of Bob's text, the longest span starting there that occurs in Alice's training examples, and the
examples it occurs in. The hashed in-memory index (`provenance.observational.build_span_index`)
costs ~170 bytes per token; this one is a suffix array on disk, read through `numpy.memmap`:

    stream    the examples' tokens (uint8 / uint16 / uint32, the smallest that holds them), each
              example followed by a separator (the dtype's largest value, never a token), so no
              match crosses an example boundary;
    suffixes  the stream positions of all non-separator suffixes, in lexicographic order
              (uint32 below 2^32 positions, else uint64);
    offsets   where each example starts (n_examples + 1 int64).

That is 6 bytes per token for a vocabulary below 65,535 (plus 8 per example), against ~170 in
memory. The suffix array is built by libdivsufsort (`pydivsufsort`) on the big-endian bytes of the
stream, keeping the suffixes that start on a token boundary: big-endian byte order is token
order, and a suffix that ends first sorts first, in both.

Queries and scores live in `provenance.suffix_matches`; results equal the hashed index's
exactly (tested).

File: 8-byte magic, the header length (uint64), a JSON header (format version, sizes, dtypes,
default span lengths, each section's offset and CRC32), then 64-byte aligned sections. It is
written to a temporary file in the same folder and moved into place with `os.replace`, so a
crash never leaves a half-written index under the final name; opening checks the magic, the
version, the sizes and (by default) every section's CRC32, and names what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path

import numpy as np

from lazyrich.core.checks import check_positive_integer, require_memory
from provenance.sequences import as_sequences

MAGIC = b"LZSUFIX\x01"
FORMAT_VERSION = 1
ALIGN = 64
TOKEN_DTYPES = ("<u1", "<u2", "<u4")  # each reserves its largest value for the separator
EXPAND_CHUNK = 2**22  # suffix-array rows expanded to examples together
CRC_BLOCK = 2**26  # bytes checksummed at a time

__all__ = ["SuffixIndex", "SuffixIndexError", "build_suffix_index", "open_suffix_index",
           "suffix_index_build_bytes"]


class SuffixIndexError(ValueError):
    """A file that is not a suffix index, was written by another format version, or is damaged."""


@dataclasses.dataclass(frozen=True)
class SuffixIndex:
    """A memory-mapped suffix index of Alice's examples (open with `open_suffix_index`)."""
    path: str
    stream: np.ndarray  # (n_tokens + n_examples,) memmap: tokens, a separator after each example
    suffixes: np.ndarray  # (n_tokens,) memmap: stream positions of the sorted suffixes
    offsets: np.ndarray  # (n_examples + 1,) int64: example j is tokens offsets[j]:offsets[j + 1]
    starts: np.ndarray  # (n_examples,) int64: stream position of example j's first token
    separator: int
    min_length: int
    max_length: int
    n_examples: int
    n_tokens: int


def _token_dtype(largest: int) -> np.dtype:
    for dtype in map(np.dtype, TOKEN_DTYPES):
        if largest < np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"examples hold token id {largest}; the suffix index stores ids below "
                     f"{np.iinfo(np.uint32).max} (uint32, the largest value is the separator)")


def _layout(n_tokens: int, n_examples: int, largest: int) -> dict:
    """Dtypes and sizes of the build: token width, suffix-array entry sizes."""
    token = _token_dtype(largest)
    n_stream = n_tokens + n_examples
    n_bytes = n_stream * token.itemsize
    return {"token": token, "n_stream": n_stream, "n_bytes": n_bytes,
            "raw_item": 4 if n_bytes <= np.iinfo(np.int32).max else 8,
            "suffix": np.dtype("<u4" if n_stream < 2**32 else "<u8")}


def suffix_index_build_bytes(n_tokens: int, n_examples: int, largest_token: int) -> int:
    """Peak bytes `build_suffix_index` allocates (besides the caller's own arrays): the int64
    token copy, the stream, its big-endian bytes, libdivsufsort's byte-level suffix array
    (int32, or int64 past 2^31 bytes), the token-level suffix array and one filter chunk."""
    layout = _layout(n_tokens, n_examples, largest_token)
    return (8 * n_tokens + (layout["token"].itemsize + 1) * layout["n_stream"]
            + layout["n_bytes"] * (1 + layout["raw_item"])
            + layout["n_stream"] * layout["suffix"].itemsize + 24 * EXPAND_CHUNK)


def _sorted_suffixes(stream: np.ndarray, n_tokens: int, layout: dict) -> np.ndarray:
    """Stream positions of the non-separator suffixes in lexicographic token order."""
    from pydivsufsort import divsufsort

    width = layout["token"].itemsize
    big_endian = stream.astype(layout["token"].newbyteorder(">")).view(np.uint8)
    raw = divsufsort(big_endian, force64=layout["raw_item"] == 8)
    del big_endian
    out = np.empty(layout["n_stream"], layout["suffix"])
    filled = 0
    for start in range(0, len(raw), EXPAND_CHUNK):
        part = raw[start:start + EXPAND_CHUNK]
        aligned = part[part % width == 0] // width if width > 1 else part
        out[filled:filled + len(aligned)] = aligned
        filled += len(aligned)
    # separator-first suffixes sort last (the separator is the dtype's largest value): drop them
    return out[:n_tokens]


def _crc32(array: np.ndarray) -> int:
    data, crc = memoryview(np.ascontiguousarray(array)).cast("B"), 0
    for start in range(0, len(data), CRC_BLOCK):
        crc = zlib.crc32(data[start:start + CRC_BLOCK], crc)
    return crc


def build_suffix_index(examples, path, *, offsets=None, min_length: int = 2,
                       max_length: int = 8) -> SuffixIndex:
    """Write the suffix index of Alice's examples to `path` and open it.

    examples: a list of 1-D integer arrays (one per example, in any order; ids in [0, 2^32 - 1)),
    or one flat 1-D array with `offsets` (n_examples + 1,). min_length, max_length: the span
    lengths the span-overlap functions use by default (stored in the file; any can be asked at
    `open_suffix_index`). The memory `suffix_index_build_bytes` estimates is checked before
    anything is built (1e8 tokens, vocabulary < 65,535: about 2.6 GB); the file (about 6 bytes per
    token for such a vocabulary) is written to a temporary name and moved into place.
    """
    _check_lengths(min_length, max_length)
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path={str(path)!r}: folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"path={str(path)!r} is a folder; give a file name for the index")
    def require(n_tokens: int) -> None:
        require_memory(suffix_index_build_bytes(n_tokens, 1, 0), f"the suffix index of "
                       f"{n_tokens} tokens", "index fewer examples at a time")

    tokens, offsets = as_sequences(examples, offsets, "examples", require)
    largest = int(tokens.max())
    layout = _layout(len(tokens), len(offsets) - 1, largest)
    require_memory(suffix_index_build_bytes(len(tokens), len(offsets) - 1, largest),
                   f"the suffix index of {len(tokens)} tokens in {len(offsets) - 1} examples",
                   "index fewer examples at a time")
    n_examples = len(offsets) - 1
    separators = offsets[1:] + np.arange(n_examples)
    stream = np.full(layout["n_stream"], np.iinfo(layout["token"]).max, layout["token"])
    is_token = np.ones(layout["n_stream"], bool)
    is_token[separators] = False
    stream[is_token] = tokens
    del tokens, is_token
    sections = {"stream": stream, "offsets": offsets.astype("<i8"),
                "suffixes": _sorted_suffixes(stream, int(offsets[-1]), layout)}
    header = {"format": "provenance suffix index", "version": FORMAT_VERSION,
              "n_tokens": int(offsets[-1]), "n_examples": n_examples,
              "min_length": min_length, "max_length": max_length, "sections": {}}
    position = 0  # sections' offsets from the end of the padded header
    for name, array in sections.items():
        header["sections"][name] = {"offset": position, "dtype": array.dtype.str,
                                    "count": len(array), "crc32": _crc32(array)}
        position += -(-array.nbytes // ALIGN) * ALIGN
    _write_atomically(path, header, sections)
    return open_suffix_index(path, verify=False)


def _write_atomically(path: Path, header: dict, sections: dict) -> None:
    """Magic, header length, padded JSON header, then the aligned sections, via a temp file."""
    text = json.dumps(header).encode()
    start = -(-(len(MAGIC) + 8 + len(text)) // ALIGN) * ALIGN
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(MAGIC + np.uint64(len(text)).tobytes() + text)
            for name, array in sections.items():
                handle.seek(start + header["sections"][name]["offset"])
                array.tofile(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _check_lengths(min_length, max_length) -> None:
    check_positive_integer("min_length", min_length)
    check_positive_integer("max_length", max_length)
    if max_length < min_length:
        raise ValueError(f"max_length={max_length!r} is below min_length={min_length!r}; "
                         f"need integers 1 <= min_length <= max_length")


def _read_header(path: Path) -> tuple[dict, int]:
    """The JSON header and where the sections start, or SuffixIndexError naming the problem."""
    with open(path, "rb") as handle:
        head = handle.read(len(MAGIC) + 8)
        if len(head) < len(MAGIC) + 8 or head[:len(MAGIC)] != MAGIC:
            raise SuffixIndexError(f"{path} is not a provenance suffix index (its first bytes "
                                   f"are not {MAGIC!r}); build one with build_suffix_index")
        length = int(np.frombuffer(head[len(MAGIC):], np.uint64)[0])
        text = handle.read(min(length, 2**20))
    try:
        header = json.loads(text)
    except ValueError:
        raise SuffixIndexError(f"{path}: the header is damaged (unreadable JSON); rebuild the "
                               f"index with build_suffix_index") from None
    fields = {"version", "sections", "n_tokens", "n_examples", "min_length", "max_length"}
    if not isinstance(header, dict) or not fields <= set(header):
        raise SuffixIndexError(f"{path}: the header lacks field(s) "
                               f"{sorted(fields - set(header if isinstance(header, dict) else []))}"
                               f"; rebuild the index with build_suffix_index")
    if header["version"] != FORMAT_VERSION:
        raise SuffixIndexError(f"{path} was written in suffix-index format version "
                               f"{header['version']!r}; this library reads version "
                               f"{FORMAT_VERSION}: rebuild it")
    missing = {"stream", "offsets", "suffixes"} - set(header["sections"])
    if missing:
        raise SuffixIndexError(f"{path}: the header lacks section(s) {sorted(missing)}")
    return header, -(-(len(MAGIC) + 8 + length) // ALIGN) * ALIGN


def open_suffix_index(path, *, min_length: int | None = None, max_length: int | None = None,
                      verify: bool = True) -> SuffixIndex:
    """Memory-map a suffix index written by `build_suffix_index`.

    min_length, max_length: span lengths for the span-overlap functions (default: those stored
    at build time). verify: recompute every section's CRC32 (reads the whole file once, ~1 s per
    GB); without it only the magic, version, sizes and offsets are checked. A file that is not
    an index, another format version, a truncated or damaged file: `SuffixIndexError` (a
    ValueError) naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no suffix index file there")
    header, start = _read_header(path)
    size = path.stat().st_size
    arrays = {}
    for name in ("stream", "offsets", "suffixes"):
        section = header["sections"][name]
        dtype, count = np.dtype(section["dtype"]), int(section["count"])
        end = start + section["offset"] + dtype.itemsize * count
        if end > size:
            raise SuffixIndexError(f"{path} is damaged: section {name!r} ends at byte {end} but "
                                   f"the file has {size} bytes (truncated?); rebuild the index")
        arrays[name] = np.memmap(path, dtype, "r", start + section["offset"], (count,))
        if verify and _crc32(arrays[name]) != section["crc32"]:
            raise SuffixIndexError(f"{path} is damaged: section {name!r} fails its CRC32 check; "
                                   f"rebuild the index")
    offsets = np.array(arrays["offsets"], np.int64)
    n_tokens, n_examples = int(header["n_tokens"]), int(header["n_examples"])
    if (len(offsets) != n_examples + 1 or offsets[0] != 0 or offsets[-1] != n_tokens
            or np.any(np.diff(offsets) < 0) or len(arrays["suffixes"]) != n_tokens
            or len(arrays["stream"]) != n_tokens + n_examples):
        raise SuffixIndexError(f"{path} is damaged: its offsets or section sizes disagree with "
                               f"the header ({n_tokens} tokens, {n_examples} examples)")
    min_length = header["min_length"] if min_length is None else min_length
    max_length = header["max_length"] if max_length is None else max_length
    _check_lengths(min_length, max_length)
    return SuffixIndex(str(path), arrays["stream"], arrays["suffixes"], offsets,
                       offsets[:-1] + np.arange(n_examples), int(np.iinfo(arrays["stream"].dtype)
                                                                  .max), min_length, max_length,
                       n_examples, n_tokens)
