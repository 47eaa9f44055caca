"""What `--executor ray` prints (issue 19, item 13): an address that is no Ray cluster is one line
within seconds, Ray's own log lines stay quiet unless --verbose. Most of it without a cluster:
Ray's question runs in a child process, the answers are Ray's as seen in the tester's cases."""

from __future__ import annotations

import http.server
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from odenet.errors import ConfigError
from odenet.studies.executors.ray import RayConfig, cluster

ROOT = Path(__file__).resolve().parents[1]
DATA = "synthetic:train=256,test=128,size=8"
STUDY = ["study", "--dataset", DATA, "--depths", "8", "--width", "4", "--epochs", "1",
         "--device", "cpu", "--orders", "1", "--lrs", "0.1", "--executor", "ray"]  # fmt: skip
# Ray's answer when a proxy (an HTTP/2 server) answers where the GCS should be
PROXY = "RpcError: RPC error: Received http2 header with status: 404"
TOKEN = "AuthenticationError: RPC error: InvalidAuthToken: Authentication token is missing"


def _asked(monkeypatch, *, stdout="", code=1, timeout=False) -> list:
    """Ray's question answered as given; returns the list of argv it was asked with."""
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        if timeout:
            raise subprocess.TimeoutExpired(argv, kwargs["timeout"])
        return subprocess.CompletedProcess(argv, code, stdout=stdout, stderr="")

    monkeypatch.setattr(cluster.subprocess, "run", run)
    return calls


def test_a_server_that_is_not_a_ray_cluster_is_refused_at_once(monkeypatch):
    calls = _asked(monkeypatch, stdout=PROXY + "\n")
    with pytest.raises(ConfigError) as info:
        cluster._check_speaks_ray("10.0.0.1:6379")
    assert str(info.value) == (
        f"--ray-address 10.0.0.1:6379: something answers there, but not a Ray cluster ({PROXY}); "
        "start one with `ray start --head` or fix the address"
    )
    assert calls[0][-1] == "10.0.0.1:6379"


def test_a_server_that_never_replies_is_refused_after_the_wait(monkeypatch):
    _asked(monkeypatch, timeout=True)
    with pytest.raises(ConfigError, match=r"but no Ray cluster replied within 10 s; start one"):
        cluster._check_speaks_ray("10.0.0.1:6379")


@pytest.mark.parametrize(
    ("stdout", "code"),
    [("", 0),  # a Ray cluster
     (TOKEN, 1),  # one that wants a token: ray.init looks for it
     ("", 1)],  # the question could not be asked (a Ray without GcsClient): ray.init decides
)  # fmt: skip
def test_ray_clusters_and_unanswerable_questions_go_on_to_ray_init(monkeypatch, stdout, code):
    _asked(monkeypatch, stdout=stdout, code=code)
    cluster._check_speaks_ray("10.0.0.1:6379")


@pytest.mark.parametrize("address", ["auto", "ray://10.0.0.1:10001"])
def test_auto_and_ray_client_addresses_are_not_asked(monkeypatch, address):
    calls = _asked(monkeypatch, stdout=PROXY)
    cluster._check_speaks_ray(address)
    assert calls == []


class _FakeRay:
    """What connect asks of ray: is_initialized and init (its keyword arguments kept)."""

    def __init__(self, fail: str | None = None) -> None:
        self.kwargs, self.fail = None, fail

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.kwargs = kwargs
        if self.fail:
            os.write(2, f"[W gcs_client.cc:210] Failed to get cluster ID from GCS server: "
                        f"{self.fail}\n".encode())  # fmt: skip
            raise ConnectionError("Failed to connect to Ray cluster")


@pytest.mark.parametrize("verbose", [False, True])
def test_ray_logs_quiet_unless_verbose(monkeypatch, verbose):
    fake = _FakeRay()
    monkeypatch.setattr(cluster, "import_ray", lambda: fake)
    cluster.connect(RayConfig(verbose=verbose))
    level = logging.INFO if verbose else logging.ERROR  # ERROR: no "Token authentication is ..."
    assert fake.kwargs == {"address": "local", "include_dashboard": False,
                           "log_to_driver": verbose, "logging_level": level}  # fmt: skip


def test_a_cluster_that_cannot_be_joined_is_one_line_with_rays_reason(monkeypatch, capfd):
    fake = _FakeRay(fail=TOKEN)
    monkeypatch.setattr(cluster, "import_ray", lambda: fake)
    monkeypatch.setattr(cluster, "_check_reachable", lambda address: None)
    _asked(monkeypatch, stdout=TOKEN)
    with pytest.raises(ConfigError) as info:
        cluster.connect(RayConfig(address="10.0.0.1:6379"))
    assert str(info.value) == (
        f"--ray-address 10.0.0.1:6379: cannot join a Ray cluster there ({TOKEN}); start one "
        "with `ray start --head` or fix the address"
    )
    assert capfd.readouterr().err == ""  # Ray's own line was captured, not printed
    os.write(2, b"after\n")  # and file descriptor 2 is the terminal's again
    assert capfd.readouterr().err == "after\n"


def _odenet(*args, cwd) -> tuple[int, str, str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "odenet", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


@pytest.fixture
def http_server():
    """An HTTP/1.1 server on a free local port: it answers, but never as Ray's GCS."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.slow  # Ray's question waits its 10 s; ray.init alone would wait minutes
def test_case_an_address_that_is_no_ray_cluster_is_one_line_within_20_s(tmp_path, http_server):
    pytest.importorskip("ray")
    code, _, err, seconds = _odenet(
        *STUDY, "--ray-address", http_server, "--out", "D", cwd=tmp_path
    )
    assert code == 2 and err == (
        f"error: --ray-address {http_server}: something answers there, but no Ray cluster "
        "replied within 10 s; start one with `ray start --head` or fix the address\n"
    )
    assert seconds < 30 and not (tmp_path / "D").exists()  # ~20 s on 2 busy cores


@pytest.mark.slow  # starts a local Ray instance (~20 s)
def test_case_a_local_ray_study_prints_no_ray_lines(tmp_path):
    pytest.importorskip("ray")
    code, _, err, _ = _odenet(*STUDY, "--out", "D", "-q", cwd=tmp_path)
    assert code == 0 and err == "", err  # no "Token authentication is enabled ..."
