"""The demo's text corpus: the Python standard library's own source, split into byte documents.

The palimpsest demonstration (issue 8) needs real text that is available offline on every
machine; the interpreter ships its standard library as `.py` files (code, comments and
docstrings) under `sysconfig.get_paths()["stdlib"]`. Files are read in sorted relative-path order
(site-packages and the test suites are skipped, so the corpus does not depend on what is
installed), concatenated file by file and cut into non-overlapping documents of `document_bytes`
bytes; each file's tail shorter than a document is dropped, so no document spans two files.
CPython 3.11.7's stdlib gives 734 files and 94,310 documents of 128 bytes (12.1 MB).

`split_documents` then draws disjoint sets of documents (Alice's training set, Bob's other text)
with a fixed corpus seed; which documents are in a set is not what the provenance test is about,
only the order in which Alice trains on hers.
"""

from __future__ import annotations

import pathlib
import sysconfig

import numpy as np

SKIPPED_DIRECTORIES = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test",
                                 "__pycache__"})


def stdlib_directory() -> pathlib.Path:
    """The directory holding this interpreter's standard library source."""
    return pathlib.Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: pathlib.Path | None = None) -> list[pathlib.Path]:
    """Every `.py` file under `root` (default: the stdlib), sorted by relative path, outside
    site-packages, test suites and caches."""
    root = stdlib_directory() if root is None else pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"root={str(root)!r} is not a directory")
    files = [path for path in root.rglob("*.py")
             if not SKIPPED_DIRECTORIES.intersection(path.relative_to(root).parts[:-1])]
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def stdlib_documents(document_bytes: int = 128, max_documents: int | None = None,
                     root: pathlib.Path | None = None) -> np.ndarray:
    """Documents (n, document_bytes) uint8 cut from the stdlib source in file order.

    Args:
        document_bytes: bytes per document (>= 2); each file contributes floor(size / bytes).
        max_documents: stop after this many documents (None: the whole library).
        root: directory to read instead of the stdlib (tests use small directories).
    """
    if not isinstance(document_bytes, int) or document_bytes < 2:
        raise ValueError(f"document_bytes={document_bytes!r} must be an integer >= 2")
    if max_documents is not None and (not isinstance(max_documents, int) or max_documents < 1):
        raise ValueError(f"max_documents={max_documents!r} must be None or a positive integer")
    chunks: list[np.ndarray] = []
    count = 0
    for path in stdlib_files(root):
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        usable = (data.size // document_bytes) * document_bytes
        if usable == 0:
            continue
        chunks.append(data[:usable].reshape(-1, document_bytes))
        count += chunks[-1].shape[0]
        if max_documents is not None and count >= max_documents:
            break
    if not chunks:
        raise ValueError(f"no file under {root or stdlib_directory()} is at least "
                         f"{document_bytes} bytes long")
    documents = np.concatenate(chunks)
    return documents if max_documents is None else documents[:max_documents]


def split_documents(documents: np.ndarray, sizes: tuple[int, ...],
                    seed: int = 0) -> list[np.ndarray]:
    """Disjoint random subsets of `documents` (n, length), of the given `sizes`, drawn without
    replacement with `seed` (the corpus seed, unrelated to any training order)."""
    documents = np.asarray(documents)
    if documents.ndim != 2:
        raise ValueError(f"documents must be 2-D (n, length), got shape {documents.shape}")
    if any(not isinstance(size, int) or size < 1 for size in sizes):
        raise ValueError(f"sizes={sizes!r} must be positive integers")
    if sum(sizes) > documents.shape[0]:
        raise ValueError(f"sizes={sizes!r} need {sum(sizes)} documents; only "
                         f"{documents.shape[0]} available")
    chosen = np.random.default_rng(seed).permutation(documents.shape[0])
    bounds = np.cumsum((0, *sizes))
    return [documents[chosen[start:stop]] for start, stop in zip(bounds[:-1], bounds[1:],
                                                                  strict=True)]
