"""Handwritten-digit data for the `digits` experiment: scikit-learn's digits, or a user's MNIST.

Kumar et al. (2023), Sec. 5 (paper page `grokking.md`, Sec. 5) show grokking on MNIST as the
initialisation / output scale grows. Offline we use the 1797 8x8 digits shipped with scikit-learn
(`load_digits`); `load_mnist` reads a user's MNIST from a `.npz` file (Keras layout: x_train,
y_train, x_test, y_test; or images, labels) or from the original idx files (optionally gzipped).

Every loader returns an `ImageDataset` whose images are flattened and standardised once, on the
host: pixels minus the pool's mean image, divided by the pool's root-mean-square pixel, so that
mean_pool |x|^2 / d = 1 and preactivations w . x / sqrt(d) with w ~ N(0, 1) are O(1).
"""

from __future__ import annotations

import functools
import gzip
import os
from typing import NamedTuple

import numpy as np

# idx type codes (http://yann.lecun.com/exdb/mnist/): the data are big-endian
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLITS = ("train", "test", "all")


class ImageDataset(NamedTuple):
    """A pool of labelled images.

    Attributes:
        images: (n, d) float32, standardised (see the module docstring).
        labels: (n,) int32 in [0, n_classes).
        n_classes: number of classes.
    """

    images: np.ndarray
    labels: np.ndarray
    n_classes: int


def image_dataset(images, labels) -> ImageDataset:
    """Flatten, standardise and check a pool of images (any shape (n, ...)) and int labels (n,).

    Raises:
        ValueError: mismatched lengths, fewer than 2 images, non-integer or negative labels,
            fewer than 2 classes, or constant images.
    """
    images = np.asarray(images, dtype=np.float64)
    labels = np.asarray(labels)
    if images.ndim < 2 or len(images) < 2:
        raise ValueError(f"images have shape {images.shape}; need (n, ...) with n >= 2")
    if labels.shape != (len(images),):
        raise ValueError(f"labels have shape {labels.shape}; need ({len(images)},), one label "
                         f"per image")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ValueError(f"labels must be non-negative integers (got dtype {labels.dtype}, "
                         f"minimum {labels.min()})")
    n_classes = int(labels.max()) + 1
    if n_classes < 2:
        raise ValueError(f"labels take {n_classes} value(s); need at least 2 classes")
    flat = images.reshape(len(images), -1)
    centred = flat - flat.mean(axis=0)
    rms = np.sqrt(np.mean(centred**2))
    if rms == 0:
        raise ValueError("all images are identical; nothing can be learned from them")
    return ImageDataset((centred / rms).astype(np.float32), labels.astype(np.int32), n_classes)


@functools.lru_cache(maxsize=1)
def load_digits() -> ImageDataset:
    """scikit-learn's 1797 handwritten digits (8x8, d = 64, 10 classes), standardised."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError("the digits experiment needs scikit-learn: pip install scikit-learn") \
            from error
    digits = sklearn_digits()
    return image_dataset(digits.images, digits.target)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """An array from an idx file (the MNIST format), gzipped or not.

    Raises:
        ValueError: the file is not an idx file (bad magic number or size).
    """
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{os.fspath(path)!r} is not an idx file (bad magic number "
                         f"{raw[:4].hex()})")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int(v) for v in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{os.fspath(path)!r}: header says shape {shape} ({expected} bytes) but "
                         f"the file has {len(raw)} bytes")
    return np.frombuffer(raw[header:], dtype=dtype).reshape(shape)


def _idx_file(directory: str, prefix: str, kind: str) -> str | None:
    for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte",
                 f"{prefix}-{kind}.idx{3 if kind == 'images' else 1}-ubyte"):
        for candidate in (name, name + ".gz"):
            if os.path.isfile(os.path.join(directory, candidate)):
                return os.path.join(directory, candidate)
    return None


def _parts_from_directory(directory: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = _idx_file(directory, prefix, "images"), _idx_file(directory, prefix,
                                                                             "labels")
        if images and labels:
            parts[split] = (read_idx(images), read_idx(labels))
    return parts


def _parts_from_npz(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    with np.load(path) as archive:
        keys = set(archive.files)
        if {"images", "labels"} <= keys:
            return {"train": (archive["images"], archive["labels"])}
        parts = {split: (archive[f"x_{split}"], archive[f"y_{split}"]) for split in
                 ("train", "test") if {f"x_{split}", f"y_{split}"} <= keys}
    if not parts:
        raise ValueError(f"{path!r} holds arrays {sorted(keys)}; an MNIST .npz needs x_train and "
                         f"y_train (and optionally x_test, y_test), or images and labels")
    return parts


def load_mnist(path: str | os.PathLike, split: str = "all") -> ImageDataset:
    """A user's MNIST (or any image set in the same formats) as a standardised pool.

    Args:
        path: a `.npz` file (x_train, y_train[, x_test, y_test], or images, labels), or a
            directory with idx files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
            `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (each optionally `.gz`).
        split: "train", "test", or "all" (both concatenated: the experiment draws its own
            train and test subsets from the pool for every seed).

    Raises:
        ValueError: unknown split, a path that is neither, a missing split, or bad files.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not allowed; split must be one of {SPLITS}")
    path = os.fspath(path)
    if os.path.isdir(path):
        parts = _parts_from_directory(path)
        if not parts:
            raise ValueError(f"{path!r} holds no idx files train-images-idx3-ubyte[.gz] with "
                             f"train-labels-idx1-ubyte[.gz] (or t10k-...)")
    elif os.path.isfile(path) and path.endswith(".npz"):
        parts = _parts_from_npz(path)
    else:
        raise ValueError(f"path={path!r} is neither a .npz file nor a directory of idx files")
    wanted = list(parts) if split == "all" else [split]
    missing = [s for s in wanted if s not in parts]
    if missing:
        raise ValueError(f"split={split!r}: {path!r} has no {missing[0]} images (it has "
                         f"{sorted(parts)})")
    images = np.concatenate([parts[s][0] for s in wanted])
    labels = np.concatenate([parts[s][1] for s in wanted])
    return image_dataset(images, labels)
