"""Where the Ray executor runs: ``RayConfig``, joining or starting Ray, the resources per task.

Ray is imported only here and in the worker, when a Ray executor is made (``import_ray``),
never when odenet is imported.

Joining an address: a TCP connection within 5 s, then Ray's own question to the cluster's GCS
asked once in a child process (an HTTP server or a proxy is refused in seconds, not after
ray.init's 20 s of retries or minutes of waiting), then ray.init. Ray's own messages stay quiet
unless ``RayConfig.verbose`` (``--verbose``): its Python loggers at ERROR in the driver (no
"Token authentication is enabled" before every run), the workers' output not forwarded, and
what its C++ core writes to the terminal while joining (one warning per second of retrying)
captured, so that a cluster that cannot be joined is one line naming Ray's reason.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from odenet.errors import ConfigError
from odenet.extras import require

PROBE_S = 10.0  # seconds the question "are you a Ray cluster?" may take, Python start included
# The question, in a child process (argv[1]: HOST:PORT): prints why not, exit code 1.
_PROBE = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1])
except Exception as err:
    print(type(err).__name__ + ": " + (str(err).splitlines() or [""])[0])
    sys.exit(1)
"""


@dataclass(frozen=True)
class RayConfig:
    """Where and with what resources the Ray executor runs each task."""

    address: str | None = None  # an existing cluster (HOST:PORT, ray://HOST:PORT, auto); None:
    # start a local Ray instance with this machine's CPUs and GPUs
    gpus_per_run: float | None = None  # GPUs per task (None: 1 when the cluster has GPUs and
    # the study's device is not cpu, else 0); a task with GPUs trains a fusion group
    cpus_per_run: float = 1.0  # CPUs per task (its worker's torch threads)
    max_retries: int = 2  # resubmissions of a lost task (from its runs' latest checkpoints)
    verbose: bool = False  # show Ray's own log messages (and the workers' output)

    def given(self) -> bool:
        """Whether any option differs from the defaults (they need --executor ray)."""
        return self != RayConfig()


def import_ray():
    """The ray module, or ConfigError naming the extra to install."""
    return require("ray", "ray", "--executor ray", "Ray")


def connect(config: RayConfig):
    """ray, initialised: the instance this process already runs (e.g. a notebook's own
    ``ray.init``), the cluster at ``config.address`` or a new local instance with this
    machine's CPUs and GPUs. ConfigError for an address where no Ray cluster can be joined."""
    ray = import_ray()
    if config.address is not None:
        _check_reachable(config.address)
    if ray.is_initialized():  # a notebook's (or a test's) own ray.init
        return ray
    kwargs = {
        "include_dashboard": False,
        "log_to_driver": config.verbose,
        "logging_level": logging.INFO if config.verbose else logging.ERROR,
    }
    if config.address is None:
        with _own_sigterm():
            ray.init(address="local", **kwargs)
        return ray
    _check_speaks_ray(config.address)
    with _own_sigterm(), _captured_output(not config.verbose) as ray_said:
        try:
            ray.init(address=config.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            reason = _gcs_reason(ray_said()) or str(err).splitlines()[0]
            raise ConfigError(
                f"--ray-address {config.address}: cannot join a Ray cluster there ({reason}); "
                "start one with `ray start --head` or fix the address"
            ) from None
    return ray


@contextmanager
def _own_sigterm() -> Iterator[None]:
    """Keep this process's SIGTERM handler across ``ray.init``, which installs its own (a
    plain ``sys.exit``): the driver's SIGTERM is the study's (odenet.cli: the runs go back
    to pending, exit 143)."""
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


@contextmanager
def _captured_output(capture: bool) -> Iterator[Callable[[], str]]:
    """File descriptor 2 into a temporary file while Ray joins a cluster (its C++ core writes
    there directly, past Python's logging); yields a function returning what was written.
    Nothing is captured when ``capture`` is false (``--verbose``)."""
    if not capture:
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: _read_back(sink)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _read_back(sink) -> str:
    sink.flush()
    sink.seek(0)
    return sink.read().decode(errors="replace")


def _gcs_reason(said: str) -> str | None:
    """Why Ray could not reach the cluster's GCS, from its last retry warning (or None)."""
    marker = "Failed to get cluster ID from GCS server: "
    lines = [line for line in said.splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1].strip() if lines else None


def _check_speaks_ray(address: str, wait_s: float = PROBE_S) -> None:
    """ConfigError when the server at HOST:PORT answers, but not as a Ray cluster's GCS (an
    HTTP server, a proxy), where ray.init would retry for 20 s, or wait far longer for one
    that never replies. The question is Ray's own (``GcsClient``, as ray.init makes it), asked
    once in a child process that is killed after ``wait_s`` seconds. An answer that asks for a
    token is a Ray cluster's: ray.init, which looks for the token, decides; so does it when
    the question cannot be asked (a Ray release without ``GcsClient``)."""
    if address == "auto" or address.startswith("ray://"):
        return
    try:
        asked = subprocess.run(
            [sys.executable, "-c", _PROBE, address], capture_output=True, text=True, timeout=wait_s
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"--ray-address {address}: something answers there, but no Ray cluster replied "
            f"within {wait_s:g} s; start one with `ray start --head` or fix the address"
        ) from None
    said = asked.stdout.strip()
    if asked.returncode == 0 or not said or "uthenticat" in said:
        return
    raise ConfigError(
        f"--ray-address {address}: something answers there, but not a Ray cluster ({said}); "
        "start one with `ray start --head` or fix the address"
    )


def _check_reachable(address: str) -> None:
    """ConfigError unless HOST:PORT (or ray://HOST:PORT) accepts a TCP connection within 5 s:
    ray.init itself waits minutes for an address where nothing listens."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as err:
        raise ConfigError(
            f"--ray-address {address}: nothing answers there ({err.strerror or err}); "
            "start the cluster with `ray start --head` or fix the address"
        ) from None


def check_options(config: RayConfig) -> None:
    """ConfigError for per-task resources that no cluster could serve (before connecting)."""
    for name, value in (
        ("gpus-per-run", config.gpus_per_run),
        ("cpus-per-run", config.cpus_per_run),
    ):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"--{name} must be a non-negative number, got {value!r}")
    if config.cpus_per_run == 0 and not config.gpus_per_run:
        raise ConfigError("--cpus-per-run 0 needs --gpus-per-run > 0: a task needs a resource")


def task_resources(
    ray, config: RayConfig, device: str, cuda_graphs: bool | None
) -> tuple[float, int]:
    """(GPUs per task, tasks the cluster runs at once), checked against its nodes
    (ConfigError when no node could run a task, or the device or CUDA graphs need GPUs)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = config.gpus_per_run
    if gpus is None:
        gpus = 1.0 if most_gpus >= 1 and device != "cpu" else 0.0
    if gpus > most_gpus:
        raise ConfigError(
            f"--gpus-per-run {gpus:g}: no node of the Ray cluster has that many GPUs "
            f"(the most is {most_gpus:g}); lower it"
        )
    if config.cpus_per_run > most_cpus:
        raise ConfigError(
            f"--cpus-per-run {config.cpus_per_run:g}: no node of the Ray cluster has that many "
            f"CPUs (the most is {most_cpus:g}); lower it"
        )
    if gpus == 0 and device == "cuda":
        raise ConfigError("--device cuda with --executor ray needs GPUs: give --gpus-per-run 1")
    if gpus == 0 and cuda_graphs:
        raise ConfigError("--cuda-graphs needs GPUs: drop it or give --gpus-per-run 1")
    total = ray.cluster_resources()
    slots = total.get("GPU", 0.0) / gpus if gpus else total.get("CPU", 0.0) / config.cpus_per_run
    return gpus, max(1, int(slots))
