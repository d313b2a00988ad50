"""Data helpers that need numpy only."""

import os

import numpy as np

from . import _core


def load_mnist(directory):
    """MNIST (or any data set in its format) from ``directory``'s four IDX files.

    The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, raw or ``.gz``, checked as the
    crate's ``train`` checks them (shapes, labels below 10, and the SHA-256 checksums when the
    files claim to be MNIST). ``.gz`` files are decompressed once into the crate's cache.

    Returns ``(X_train, y_train, X_test, y_test)``: read-only uint8 arrays mapped from the raw
    files (``numpy.memmap``, no copy), the images as ``samples × 784`` rows (pixels 0–255,
    0 = background), the labels as ``samples``. ``np.array(X)`` makes a writeable copy.

    Raises ``OSError`` naming the file and the fault when a file is missing or malformed.
    """
    files = _core.mnist_files(os.fspath(directory))
    arrays = []
    for index, (path, offset, count, item) in enumerate(files):
        shape = (count, item) if index % 2 == 0 else (count,)  # images, labels, images, labels
        arrays.append(np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape))
    return tuple(arrays)


def simd_path(simd="auto"):
    """The instruction set ``simd`` (``auto``, ``avx512``, ``avx2``, ``sse2``, ``neon``,
    ``scalar``) resolves to on this CPU; ``ValueError`` for one it lacks."""
    return _core.simd_path(simd)
