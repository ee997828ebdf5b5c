"""Span indexes for the span-overlap test: the on-disk suffix index at 1e6, 1e7 and 1e8 tokens.

Kuditipudi et al. (2025) score training examples by their overlap with Bob's text; at the
paper's scale Alice's data are 1e8+ tokens, where the hashed in-memory index
(`provenance.build_span_index`, ~170 bytes per token) cannot go. Each size runs in a fresh
subprocess (so peak memory is its own) on a Zipf(1.2) corpus over a 50,000-token vocabulary in
examples of 250 tokens, and prints

    build s        `build_suffix_index` (file written and reopened), wall time
    disk B/tok     file size / tokens
    peak RSS GB    the process's peak resident memory (`ru_maxrss`) by the end of the build,
                   the corpus and the imports included; base GB: the same just before the build
    RAM B/tok      what an opened index holds in RAM (offsets and example starts; the rest is
                   memory-mapped and paged in by the OS as queries touch it)
    open s         `open_suffix_index` with verify=True (CRC32 of every section)
    queries/s      text positions matched per second by `longest_matches` (a 100,000-token text,
                   half copied from the corpus); score s: `span_overlap_scores` on that text

and, at the sizes given to --hashed (default 1e6), the same for the hashed in-memory index, side
by side. Writes its index files into a temporary folder (removed afterwards).

`--infini-gram N` instead compares with the `infini-gram` package's engine (not a dependency:
`pip install infini-gram`, Linux x86-64) on N tokens: its own suffix-array builder (the bundled
`rust_indexing` binary, on the package's file layout written here), and longest matches found
the only way its API allows, one `count` call per (position, length) until a miss, on a
20,000-token text; the lengths are checked equal to ours.

    python benchmarks/provenance_index.py [--sizes 1e6 1e7 1e8] [--hashed 1e6] [--max-length 8]
    python benchmarks/provenance_index.py --infini-gram 1e6
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VOCABULARY = 50_000
EXAMPLE_TOKENS = 250
TEXT_TOKENS = 100_000


def corpus(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zipf tokens (n,) uint16 in chunks (no n-sized int64 temporary), offsets, and a text."""
    rng = np.random.default_rng(seed)
    tokens = np.empty(n, np.uint16)
    for start in range(0, n, 2**22):
        size = min(2**22, n - start)
        tokens[start:start + size] = np.minimum(rng.zipf(1.2, size), VOCABULARY) - 1
    offsets = np.append(np.arange(0, n, EXAMPLE_TOKENS), n)
    copied = [tokens[s:s + 50] for s in rng.integers(0, n - 50, TEXT_TOKENS // 100)]
    fresh = np.minimum(rng.zipf(1.2, TEXT_TOKENS // 2), VOCABULARY) - 1
    return tokens, offsets, np.concatenate([*copied, fresh])


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def measure(n: int, kind: str, max_length: int, folder: str) -> dict:
    """One size and one index kind, in this process."""
    import provenance

    tokens, offsets, text = corpus(n)
    before = peak_rss_bytes()
    start = time.perf_counter()
    if kind == "suffix":
        path = Path(folder) / f"index-{n}.bin"
        index = provenance.build_suffix_index(tokens, path, offsets=offsets,
                                              max_length=max_length)
    else:
        index = provenance.build_span_index(tokens, offsets=offsets, max_length=max_length)
    build = time.perf_counter() - start
    row = {"kind": kind, "n_tokens": n, "build_s": build, "peak_rss_gb": peak_rss_bytes() / 1e9,
           "base_rss_gb": before / 1e9}
    if kind == "suffix":
        del index
        start = time.perf_counter()
        index = provenance.open_suffix_index(path)
        row["open_s"] = time.perf_counter() - start
        row["disk_per_token"] = path.stat().st_size / n
        row["ram_per_token"] = (index.offsets.nbytes + index.starts.nbytes) / n
    else:
        arrays = [index.tokens, index.offsets] + [getattr(table, field.name)
                                                  for table in index.tables
                                                  for field in table.__dataclass_fields__.values()]
        row["ram_per_token"] = sum(array.nbytes for array in arrays) / n
    start = time.perf_counter()
    length, _ = provenance.longest_matches(index, text)
    row["queries_per_s"] = len(text) / (time.perf_counter() - start)
    row["matched_fraction"] = float(np.mean(length > 0))
    start = time.perf_counter()
    provenance.span_overlap_scores(index, text)
    row["score_s"] = time.perf_counter() - start
    return row


def infini_gram(n: int, max_length: int, folder: str) -> dict:
    """Build, disk size and longest-match rate of the infini-gram engine, beside ours."""
    import provenance

    spec = importlib.util.find_spec("infini_gram")
    if spec is None:
        raise SystemExit("--infini-gram needs the infini-gram package (pip install infini-gram)")
    from infini_gram.engine import InfiniGramEngine

    binary = Path(spec.origin).parent / "rust_indexing"
    tokens, offsets, _ = corpus(n)
    start = time.perf_counter()
    data = Path(folder) / "tokenized.0"
    with open(data, "wb") as handle, open(Path(folder) / "offset.0", "wb") as starts:
        position = 0
        for first, last in zip(offsets[:-1], offsets[1:], strict=True):
            content = b"\xff\xff" + tokens[first:last].tobytes()  # its separator, then u16 ids
            handle.write(content)
            starts.write(np.uint64(position).tobytes())
            position += len(content)
    size, common = data.stat().st_size, f"--data-file {data} --token-width 2"
    ratio = int(np.ceil(np.log2(size) / 8))
    for arguments in (f"make-part --parts-dir {folder}/parts --start-byte 0 --end-byte {size}",
                      f"merge --parts-dir {folder}/parts --merged-dir {folder}/merged "
                      f"--num-threads 1 --hacksize 100000",
                      f"concat --merged-dir {folder}/merged --merged-file {folder}/table.0 "
                      f"--num-threads 1"):
        os.makedirs(f"{folder}/parts", exist_ok=True)
        os.makedirs(f"{folder}/merged", exist_ok=True)
        subprocess.run(f"{binary} {arguments} {common} --ratio {ratio}", shell=True, check=True,
                       capture_output=True)
    build = time.perf_counter() - start
    engine = InfiniGramEngine(index_dir=folder, eos_token_id=0, vocab_size=65535,
                              token_dtype="u16")
    text = (np.minimum(np.random.default_rng(1).zipf(1.2, 20_000), VOCABULARY) - 1).tolist()
    start = time.perf_counter()
    theirs = []
    for i in range(len(text)):
        length = 0
        while (length < max_length and i + length < len(text)
               and engine.count(input_ids=text[i:i + length + 1])["count"] > 0):
            length += 1
        theirs.append(length)
    rate = len(text) / (time.perf_counter() - start)
    disk = sum((Path(folder) / name).stat().st_size for name in ("tokenized.0", "table.0",
                                                                  "offset.0"))
    start = time.perf_counter()
    ours = provenance.build_suffix_index(tokens, Path(folder) / "ours.bin", offsets=offsets,
                                         min_length=1, max_length=max_length)
    our_build = time.perf_counter() - start
    start = time.perf_counter()
    lengths, _ = provenance.longest_matches(ours, np.array(text))
    our_rate = len(text) / (time.perf_counter() - start)
    if not np.array_equal(lengths, theirs):
        raise SystemExit("infini-gram and the suffix index disagree on longest matches")
    print(f"{'engine':<13}{'build s':>9}{'disk B/tok':>11}{'queries/s':>11}")
    print(f"{'infini-gram':<13}{build:>9.2f}{disk / n:>11.2f}{rate:>11.0f}")
    print(f"{'ours':<13}{our_build:>9.2f}{(Path(folder) / 'ours.bin').stat().st_size / n:>11.2f}"
          f"{our_rate:>11.0f}")
    return {"infini_gram_queries_per_s": rate, "ours_queries_per_s": our_rate}


def run_in_subprocess(n: int, kind: str, max_length: int, folder: str) -> dict:
    command = [sys.executable, __file__, "--one", str(n), kind, str(max_length), folder]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7, 1e8])
    parser.add_argument("--hashed", type=float, nargs="*", default=[1e6],
                        help="sizes at which to run the hashed in-memory index too")
    parser.add_argument("--max-length", type=int, default=8)
    parser.add_argument("--infini-gram", type=float, metavar="N",
                        help="compare with the infini-gram package's engine on N tokens")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.infini_gram:
        with tempfile.TemporaryDirectory() as folder:
            return [infini_gram(int(args.infini_gram), args.max_length, folder)]
    if args.one:
        n, kind, max_length, folder = args.one
        print(json.dumps(measure(int(n), kind, int(max_length), folder)))
        return []
    rows = []
    print(f"{'index':<8}{'tokens':>8}{'build s':>9}{'disk B/tok':>11}{'peak RSS GB':>12}"
          f"{'base GB':>8}"
          f"{'RAM B/tok':>10}{'open s':>8}{'queries/s':>11}{'score s':>9}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for n in map(int, args.sizes):
            for kind in ["suffix"] + (["hashed"] if n in map(int, args.hashed) else []):
                row = run_in_subprocess(n, kind, args.max_length, folder)
                rows.append(row)
                print(f"{kind:<8}{n:>8.0e}{row['build_s']:>9.2f}"
                      f"{row.get('disk_per_token', 0.0):>11.2f}"
                      f"{row['peak_rss_gb']:>12.2f}{row['base_rss_gb']:>8.2f}"
                      f"{row['ram_per_token']:>10.3f}"
                      f"{row.get('open_s', 0.0):>8.2f}{row['queries_per_s']:>11.0f}"
                      f"{row['score_s']:>9.2f}", flush=True)
                for path in Path(folder).iterdir():
                    path.unlink()
    return rows


if __name__ == "__main__":
    main()
