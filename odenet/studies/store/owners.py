"""The process facts the store's claims rest on: whether a pid is alive, and who it is
(``process_identity``), so that a dead owner's runs are reclaimed even when its pid was given
to another process."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path


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
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
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


def owner_alive(pid: int | None, owner: str | None) -> bool:
    """Whether the process that claimed a run (``pid`` and its ``process_identity`` then, on
    this host) is still running: the pid must be alive and still be the same process.

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


def claimer_alive(row: sqlite3.Row) -> bool:
    """Whether the process that claimed this 'running' row still runs (a store from before
    owner identity has no owner column: the pid alone decides)."""
    return owner_alive(row["pid"], row["owner"] if "owner" in row.keys() else None)
