"""Parsers for the official on-disk formats: gzip idx (MNIST family) and CIFAR python pickles.

Both return numpy uint8 images shaped (N, C, H, W) and int64 labels (N,). A malformed file
raises DataError naming the file; nothing here touches the network.
"""

from __future__ import annotations

import gzip
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from odenet.errors import DataError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte data, 1 dimension (N,)


def parse_idx(data: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Decode an (uncompressed) idx file of unsigned bytes.

    Layout: a big-endian int32 magic 0x000008DD (08 = uint8, DD = number of dims), DD big-endian
    int32 sizes, then prod(sizes) bytes row-major. Returns a read-only uint8 array of that shape.
    """
    if len(data) < 4:
        raise DataError(f"{source}: too short to be an idx file ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    dtype_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or dtype_code != 0x08 or ndim == 0:
        raise DataError(f"{source}: bad idx magic 0x{magic:08x} (expected 0x0000080N, uint8 data)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: idx header truncated")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape))
    if len(data) - header != count:
        raise DataError(
            f"{source}: idx payload has {len(data) - header} bytes, header {shape} says {count}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def gunzip(path: Path) -> bytes:
    """The decompressed content of a gzip file; DataError if it is not valid gzip."""
    try:
        return gzip.decompress(Path(path).read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a valid gzip file ({err})") from None


def read_idx_images(path: Path) -> np.ndarray:
    """A gzip idx3 image file -> uint8 (N, 1, rows, cols)."""
    arr = parse_idx(gunzip(path), source=str(path))
    if arr.ndim != 3:
        raise DataError(f"{path}: expected 3-d idx images (magic 0x{IDX_IMAGES_MAGIC:08x})")
    return arr[:, None, :, :]


def read_idx_labels(path: Path) -> np.ndarray:
    """A gzip idx1 label file -> int64 (N,)."""
    arr = parse_idx(gunzip(path), source=str(path))
    if arr.ndim != 1:
        raise DataError(f"{path}: expected 1-d idx labels (magic 0x{IDX_LABELS_MAGIC:08x})")
    return arr.astype(np.int64)


# CIFAR archives: member names inside the official tar.gz files and the label key of each.
CIFAR_LAYOUT = {
    "cifar10": {
        "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
        "test": ["cifar-10-batches-py/test_batch"],
        "label_key": b"labels",
    },
    "cifar100": {
        "train": ["cifar-100-python/train"],
        "test": ["cifar-100-python/test"],
        "label_key": b"fine_labels",
    },
}


def _unpickle_batch(tar: tarfile.TarFile, member: str, label_key: bytes, source: Path):
    try:
        handle = tar.extractfile(member)
    except KeyError:
        raise DataError(f"{source}: member {member!r} missing from the archive") from None
    if handle is None:
        raise DataError(f"{source}: member {member!r} is not a regular file")
    # pickle can execute code while loading. These are the official CIFAR archives, trusted
    # because their md5 was checked against the published value before we get here.
    try:
        batch = pickle.load(handle, encoding="bytes")
    except Exception as err:  # any unpickling failure means a damaged archive
        raise DataError(f"{source}: cannot unpickle {member!r} ({err})") from None
    try:
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{source}: {member!r} lacks b'data'/{label_key!r} ({err})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(
            f"{source}: {member!r} has data {data.shape} and {len(labels)} labels; "
            "expected (N, 3072) row-major RGB planes and N labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


def read_cifar_archive(path: Path, variant: str):
    """Parse an official CIFAR python tar.gz in memory (no files are extracted to disk).

    variant: "cifar10" | "cifar100" (fine labels). Returns (train_x, train_y, test_x, test_y):
    uint8 (N, 3, 32, 32) and int64 (N,).
    """
    layout = CIFAR_LAYOUT[variant]
    try:
        with tarfile.open(path, "r:gz") as tar:
            parts = {
                split: [_unpickle_batch(tar, m, layout["label_key"], path) for m in layout[split]]
                for split in ("train", "test")
            }
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read the tar.gz archive ({err})") from None
    out = []
    for split in ("train", "test"):
        out.append(np.concatenate([x for x, _ in parts[split]]))
        out.append(np.concatenate([y for _, y in parts[split]]))
    return tuple(out)
