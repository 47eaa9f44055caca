"""Parsers on small files written here in the official formats (gzip idx, CIFAR pickles)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest

from odenet.data.formats import (
    parse_idx,
    read_cifar_archive,
    read_idx_images,
    read_idx_labels,
)
from odenet.errors import DataError


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array: magic 0x0000080N, N big-endian sizes, data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx_gz(path, array: np.ndarray) -> None:
    path.write_bytes(gzip.compress(idx_bytes(array)))


def cifar_batch(images: np.ndarray, labels, label_key: bytes) -> bytes:
    """A CIFAR python batch: dict with b"data" (N, 3072) row-major RGB planes and labels."""
    data = images.reshape(len(images), -1)
    return pickle.dumps({b"batch_label": b"test", b"data": data, label_key: list(labels)}, 2)


def write_cifar_archive(path, variant: str, train: list, test: tuple) -> None:
    """train: [(images, labels), ...] one per batch member; test: (images, labels)."""
    if variant == "cifar10":
        names = [f"cifar-10-batches-py/data_batch_{i + 1}" for i in range(len(train))]
        test_name, key = "cifar-10-batches-py/test_batch", b"labels"
    else:
        names, test_name, key = ["cifar-100-python/train"], "cifar-100-python/test", b"fine_labels"
    with tarfile.open(path, "w:gz") as tar:
        for name, (x, y) in [*zip(names, train), (test_name, test)]:
            blob = cifar_batch(x, y, key)
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def random_images(rng, n, c=3, s=32):
    return rng.integers(0, 256, size=(n, c, s, s), dtype=np.uint8)


def test_idx_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    write_idx_gz(tmp_path / "img.gz", images)
    write_idx_gz(tmp_path / "lab.gz", labels)
    x = read_idx_images(tmp_path / "img.gz")
    y = read_idx_labels(tmp_path / "lab.gz")
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[:, 0], images)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)


def test_idx_header_is_big_endian():
    data = idx_bytes(np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
    assert data[:4] == b"\x00\x00\x08\x03"
    assert data[4:16] == b"\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x03"
    np.testing.assert_array_equal(parse_idx(data), np.arange(6).reshape(1, 2, 3))


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"\x00\x00\x09\x01\x00\x00\x00\x01\x05", "bad idx magic"),  # not uint8 (0x09 = int8)
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "header truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "payload has 2 bytes"),
        (b"\x00\x00", "too short"),
    ],
)
def test_idx_malformed(data, fragment):
    with pytest.raises(DataError, match=fragment):
        parse_idx(data, source="x.idx")


def test_idx_wrong_kind_and_not_gzip(tmp_path):
    write_idx_gz(tmp_path / "lab.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match="3-d idx images"):
        read_idx_images(tmp_path / "lab.gz")
    (tmp_path / "raw.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid gzip"):
        read_idx_labels(tmp_path / "raw.gz")


def test_cifar10_archive(tmp_path):
    rng = np.random.default_rng(1)
    train = [(random_images(rng, 3), [i % 10, 1, 2]) for i in range(5)]
    test = (random_images(rng, 4), [9, 8, 7, 6])
    write_cifar_archive(tmp_path / "c10.tar.gz", "cifar10", train, test)
    tx, ty, vx, vy = read_cifar_archive(tmp_path / "c10.tar.gz", "cifar10")
    assert tx.shape == (15, 3, 32, 32) and tx.dtype == np.uint8
    np.testing.assert_array_equal(tx, np.concatenate([x for x, _ in train]))  # batch order 1..5
    np.testing.assert_array_equal(ty, np.concatenate([y for _, y in train]))
    np.testing.assert_array_equal(vx, test[0])
    assert vy.dtype == np.int64 and vy.tolist() == [9, 8, 7, 6]


def test_cifar_row_major_rgb_planes(tmp_path):
    # One image whose flat row is 0..3071: pixel (c, r, col) must be c*1024 + r*32 + col (mod 256).
    flat = (np.arange(3072) % 256).astype(np.uint8).reshape(1, 3, 32, 32)
    write_cifar_archive(tmp_path / "c.tar.gz", "cifar10", [(flat, [3])] * 5, (flat, [4]))
    tx, _, _, _ = read_cifar_archive(tmp_path / "c.tar.gz", "cifar10")
    assert tx[0, 1, 2, 5] == (1 * 1024 + 2 * 32 + 5) % 256
    assert tx[0, 2, 31, 31] == 3071 % 256


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(2)
    train = [(random_images(rng, 6), [0, 17, 42, 99, 5, 63])]
    write_cifar_archive(
        tmp_path / "c100.tar.gz", "cifar100", train, (random_images(rng, 2), [98, 1])
    )
    tx, ty, vx, vy = read_cifar_archive(tmp_path / "c100.tar.gz", "cifar100")
    assert tx.shape == (6, 3, 32, 32) and vx.shape == (2, 3, 32, 32)
    assert ty.tolist() == [0, 17, 42, 99, 5, 63] and vy.tolist() == [98, 1]


def test_cifar_archive_missing_member_and_garbage(tmp_path):
    rng = np.random.default_rng(3)
    write_cifar_archive(tmp_path / "short.tar.gz", "cifar10", [(random_images(rng, 1), [0])] * 4,
                        (random_images(rng, 1), [0]))  # fmt: skip
    with pytest.raises(DataError, match="data_batch_5"):
        read_cifar_archive(tmp_path / "short.tar.gz", "cifar10")
    (tmp_path / "junk.tar.gz").write_bytes(gzip.compress(b"junk" * 100))
    with pytest.raises(DataError, match="junk.tar.gz"):
        read_cifar_archive(tmp_path / "junk.tar.gz", "cifar10")


def test_cifar_batch_with_wrong_shape(tmp_path):
    bad = np.zeros((2, 3, 16, 16), np.uint8)  # 768 values per row instead of 3072
    write_cifar_archive(tmp_path / "bad.tar.gz", "cifar100", [(bad, [0, 1])], (bad, [0, 1]))
    with pytest.raises(DataError, match=r"\(N, 3072\)"):
        read_cifar_archive(tmp_path / "bad.tar.gz", "cifar100")
