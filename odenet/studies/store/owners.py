"""The process facts the store's claims rest on: who this process is (``Owner``: host, boot,
PID namespace, pid and start time), whether a pid is alive, and who runs as a pid now
(``process_identity``), so that a dead owner's runs are reclaimed even when its pid was given
to another process.

A pid names a process only inside its own PID namespace, on its own boot of its own host: a
study in a container (Docker, a Kubernetes pod, ``unshare --pid``) and one on the host see
different processes under the same number. ``Owner.sees`` says when another claimer's pid can
be checked here at all (``leases`` decides the rest by heartbeat).
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this host and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that was not reaped yet is a zombie: dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_identity(pid: int | None) -> str | None:
    """Who runs as ``pid`` now, in a form that survives PID reuse: ``"<boot id>:<start>"``.

    Linux: the kernel's boot id and the process's start time (clock ticks since boot, field
    22 of /proc/<pid>/stat), so a later process that got the same pid (a container's PID 1
    after a restart, a reboot, an unrelated program) has another identity. Elsewhere: the
    start time ``ps`` reports (POSIX; one-second resolution). None when neither is available
    (the pid alone then decides).
    """
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat.rsplit(")", 1)[1].split()[19]  # after "pid (comm)": field 3 is index 0
        boot = _BOOT_ID.read_text().strip()
        return f"{boot}:{start}"
    except (OSError, IndexError):
        pass
    try:  # macOS, BSDs: no /proc
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return f"ps:{out.stdout.strip()}" if out.returncode == 0 and out.stdout.strip() else None


def pid_namespace() -> str | None:
    """This process's PID namespace: the inode of /proc/self/ns/pid (Linux), ``"host"`` on a
    system without PID namespaces (macOS, BSDs: every process of the host sees every other),
    None when it cannot be told (a Linux whose /proc hides it)."""
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None if sys.platform.startswith("linux") else "host"
    return link.partition("[")[2].rstrip("]") or None


def boot_of(identity: str | None) -> str | None:
    """The boot id inside a ``process_identity`` (None for a ``ps`` identity or none)."""
    if not identity or identity.startswith("ps:"):
        return None
    return identity.partition(":")[0]


@dataclass(frozen=True)
class Owner:
    """A claiming process as the store records it (columns host, pid, owner, pidns)."""

    host: str
    pid: int
    identity: str | None  # process_identity(pid): boot id and start time
    pidns: str | None  # pid_namespace() of the process

    @classmethod
    def me(cls) -> Owner:
        """This process (looked up once per pid: a forked child is another process)."""
        return _me(os.getpid())

    def sees(self, host: str | None, pidns: str | None, identity: str | None) -> bool:
        """Whether a claimer recorded as (host, pidns, identity) lives where this process's
        pids mean the same processes: same host, same PID namespace, same boot. Only then
        can its pid be checked here (``owner_alive``)."""
        return (
            host == self.host
            and pidns is not None
            and pidns == self.pidns
            and boot_of(identity) == boot_of(self.identity)
        )


@functools.lru_cache(maxsize=2)
def _me(pid: int) -> Owner:
    return Owner(socket.gethostname(), pid, process_identity(pid), pid_namespace())


def owner_alive(pid: int | None, owner: str | None) -> bool:
    """Whether the process that claimed a run (``pid`` and its ``process_identity`` then, in
    this process's PID namespace) is still running: the pid must be alive and still be the
    same process.

    A claim without an identity (a store written by an older odenet) falls back to the pid,
    except under this process's own pid: this process claims with an identity, so such a
    claim is a previous process's that had the same pid.
    """
    if not pid_alive(pid):
        return False
    if owner is None:
        return pid != os.getpid()
    now_there = process_identity(pid)
    return now_there is None or now_there == owner
