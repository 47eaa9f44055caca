"""Locate / download / verify, against a local http.server (no real network is touched)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from test_data_formats import write_cifar_archive  # tests/ is on sys.path (rootless)

from odenet.data import datasets, fetch, load_dataset
from odenet.data.fetch import Resource, ensure_file, search_dirs
from odenet.errors import DataError


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated lookup roots: HOME (-> ~/.cache/odenet), no $ODENET_DATA, a fake system dir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    monkeypatch.setattr(fetch, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(fetch, "MIRRORS", {})
    return tmp_path


class Server:
    """A threaded HTTP server on 127.0.0.1 serving ``root``; counts GET requests per path."""

    def __init__(self, root: Path):
        self.root, self.hits = root, {}
        hits = self.hits

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 (http.server's naming)
                hits[self.path] = hits.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(env):
    root = env / "www"
    root.mkdir()
    srv = Server(root)
    yield srv
    srv.close()


def serve(server, monkeypatch, name, filename, payload: bytes) -> Resource:
    (server.root / filename).write_bytes(payload)
    monkeypatch.setitem(fetch.MIRRORS, name, (server.url,))
    return Resource(filename, md5(payload))


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there: connection refused


def test_search_order(env, monkeypatch):
    monkeypatch.setenv(fetch.DATA_ENV, str(env / "envdata"))
    dirs = search_dirs("mnist", env / "given")
    assert dirs == [
        env / "given" / "mnist",
        env / "envdata" / "mnist",
        env / "home" / ".cache" / "odenet" / "mnist",
        env / "system" / "mnist",
    ]
    assert search_dirs("mnist")[0] == env / "envdata" / "mnist"


def test_download_verifies_and_caches(server, monkeypatch):
    res = serve(server, monkeypatch, "toy", "toy.bin", b"hello world" * 1000)
    path = ensure_file("toy", res, progress=True)
    assert path == server.root.parent / "home" / ".cache" / "odenet" / "toy" / "toy.bin"
    assert path.read_bytes() == b"hello world" * 1000
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    assert ensure_file("toy", res, progress=False) == path
    assert server.hits == {"/toy.bin": 1}  # the second call found the verified copy


def test_corrupt_copy_is_fetched_again(server, monkeypatch):
    res = serve(server, monkeypatch, "toy", "toy.bin", b"the real bytes")
    target = fetch.download_dir("toy") / "toy.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"the real by")  # partial download
    assert ensure_file("toy", res, progress=False) == target
    assert target.read_bytes() == b"the real bytes"
    assert server.hits == {"/toy.bin": 1}


def test_checksum_mismatch_from_server(server, monkeypatch):
    res = serve(server, monkeypatch, "toy", "toy.bin", b"expected")
    (server.root / "toy.bin").write_bytes(b"tampered")
    with pytest.raises(DataError, match=f"md5 {md5(b'tampered')} does not match {res.md5}"):
        ensure_file("toy", res, progress=False)
    target_dir = fetch.download_dir("toy")
    assert list(target_dir.iterdir()) == []  # nothing renamed into place, no .part left


def test_offline_names_file_and_directory(env, monkeypatch):
    monkeypatch.setitem(fetch.MIRRORS, "toy", (closed_port_url(),))
    res = Resource("toy.bin", md5(b"x"))
    with pytest.raises(DataError) as info:
        ensure_file("toy", res, progress=False)
    msg = str(info.value)
    assert "cannot download toy.bin" in msg and "refused" in msg.lower()
    assert f"place toy.bin (md5 {res.md5}) in {env / 'home' / '.cache' / 'odenet' / 'toy'}" in msg
    assert "\n" not in msg


def test_download_off(env):
    res = Resource("toy.bin", md5(b"x"))
    with pytest.raises(DataError, match="toy.bin not found; downloading is off: place toy.bin"):
        ensure_file("toy", res, env / "given", download=False)


def test_data_dir_first_and_corrupt_copies_skipped(env, monkeypatch):
    good, bad = b"good bytes", b"bad bytes"
    res = Resource("f.bin", md5(good))
    monkeypatch.setenv(fetch.DATA_ENV, str(env / "envdata"))
    for root, payload in [("given", bad), ("envdata", good), ("system", good)]:
        (env / root / "toy").mkdir(parents=True)
        (env / root / "toy" / "f.bin").write_bytes(payload)
    assert ensure_file("toy", res, env / "given", download=False) == env / "envdata/toy/f.bin"
    (env / "envdata" / "toy" / "f.bin").unlink()
    assert ensure_file("toy", res, env / "given", download=False) == env / "system/toy/f.bin"


def test_system_dir_corrupt_then_download_to_user_dir(server, monkeypatch, env):
    res = serve(server, monkeypatch, "toy", "f.bin", b"payload")
    (env / "system" / "toy").mkdir(parents=True)
    (env / "system" / "toy" / "f.bin").write_bytes(b"paylo")
    path = ensure_file("toy", res, env / "given", progress=False)
    assert path == env / "given" / "toy" / "f.bin" and path.read_bytes() == b"payload"
    assert (env / "system" / "toy" / "f.bin").read_bytes() == b"paylo"  # left alone


def test_recompressed_gzip_accepted_by_content_md5(env):
    content = bytes(range(256)) * 50
    official = gzip.compress(content, mtime=1)
    debian = gzip.compress(content, mtime=2, compresslevel=1)  # same content, other bytes
    assert md5(official) != md5(debian)
    (env / "system" / "toy").mkdir(parents=True)
    (env / "system" / "toy" / "f.gz").write_bytes(debian)
    res = Resource("f.gz", md5(official), content_md5=md5(content))
    assert fetch.verify(env / "system" / "toy" / "f.gz", res)
    assert not fetch.verify(env / "system" / "toy" / "f.gz", Resource("f.gz", md5(official)))
    assert ensure_file("toy", res, download=False) == env / "system" / "toy" / "f.gz"
    (env / "system" / "toy" / "f.gz").write_bytes(debian[:-10])  # truncated gzip: rejected
    assert not fetch.verify(env / "system" / "toy" / "f.gz", res)


def test_mirror_env_and_file_url(env, monkeypatch):
    (env / "mirror" / "toy").mkdir(parents=True)
    (env / "mirror" / "toy" / "f.bin").write_bytes(b"via file url")
    monkeypatch.setenv(fetch.MIRROR_ENV, (env / "mirror").as_uri())
    monkeypatch.setitem(fetch.MIRRORS, "toy", (closed_port_url(),))
    assert fetch.urls("toy", "f.bin")[0] == (env / "mirror" / "toy" / "f.bin").as_uri()
    path = ensure_file("toy", Resource("f.bin", md5(b"via file url")), progress=False)
    assert path.read_bytes() == b"via file url"


def test_load_cifar10_end_to_end_over_http(server, monkeypatch):
    rng = np.random.default_rng(0)
    train = [(rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8), [i, 9 - i]) for i in range(5)]
    test = (rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8), [1, 2, 3])
    write_cifar_archive(server.root / "cifar-10-python.tar.gz", "cifar10", train, test)
    digest = fetch.md5_file(server.root / "cifar-10-python.tar.gz")
    source = dataclasses.replace(
        datasets.SOURCES["cifar10"], resources=(Resource("cifar-10-python.tar.gz", digest),)
    )
    monkeypatch.setitem(datasets.SOURCES, "cifar10", source)
    monkeypatch.setitem(fetch.MIRRORS, "cifar10", (server.url,))
    ds = load_dataset("cifar10", progress=False)
    assert ds.name == "cifar10" and ds.num_classes == 10 and ds.augment == "crop-flip"
    assert ds.train_images.shape == (10, 3, 32, 32) and ds.test_labels.tolist() == [1, 2, 3]
    assert ds.train_labels.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    assert ds.mean == (0.4914, 0.4822, 0.4465)
    # The published checksum guards the real archive: our toy archive fails it, offline.
    monkeypatch.setitem(datasets.SOURCES, "cifar10", dataclasses.replace(
        source, resources=(Resource("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),)
    ))  # fmt: skip
    monkeypatch.setitem(fetch.MIRRORS, "cifar10", (closed_port_url(),))
    with pytest.raises(DataError, match="corrupt or partial copies ignored"):
        load_dataset("cifar10", progress=False)
