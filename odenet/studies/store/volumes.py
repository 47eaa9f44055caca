"""Network file systems, where a study's SQLite database must not be shared.

SQLite's WAL keeps its index in shared memory (the -shm file, memory-mapped), which only works
when every process that opens the database runs on one machine; on NFS, SMB, Lustre and the
like, processes on two machines corrupt it or see stale data, and their locks are unreliable.
``network_filesystem(path)`` names the file system a path is on when it is one of those
(``statfs``'s type on Linux; elsewhere nothing is detected), so that ``odenet study`` can
refuse it before anything is written (``check_local``).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from odenet.errors import ConfigError

# statfs f_type magic numbers (linux/magic.h and the file systems' own sources) -> name
NETWORK_FILESYSTEMS = {
    0x6969: "nfs",
    0x517B: "smb",
    0xFF534D42: "cifs",
    0xFE534D42: "smb2",
    0x0BD00BD0: "lustre",
    0x00C36400: "ceph",
    0x47504653: "gpfs",
    0x19830326: "beegfs",
    0x01161970: "gfs2",
    0x7461636F: "ocfs2",
    0x5346414F: "afs",
    0x6B414653: "afs",
    0x73757245: "coda",
    0x564C: "ncp",
    0x01021997: "9p",
}


def statfs_type(path: Path) -> int | None:
    """The f_type of statfs(2) for ``path`` (Linux), or None where it cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    buf = ctypes.create_string_buffer(256)  # struct statfs: 120 bytes on 64-bit Linux
    if libc.statfs(os.fsencode(path), buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF  # f_type: the first field


def network_filesystem(path: str | Path) -> str | None:
    """The name of the network file system ``path`` (or, before it exists, its nearest
    existing parent) is on; None for a local one or where it cannot be told."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return NETWORK_FILESYSTEMS.get(statfs_type(path))


def check_local(path: str | Path, allow_network: bool) -> None:
    """ConfigError when the study directory ``path`` is on a network file system, unless
    ``allow_network`` (the user says only one machine opens it at a time)."""
    kind = None if allow_network else network_filesystem(path)
    if kind is not None:
        raise ConfigError(
            f"--out {str(path)!r} is on a network file system ({kind}), where SQLite's "
            "write-ahead log is not safe for processes on several machines: keep the study "
            "directory on a local disk and use --executor ray to train on other machines (its "
            "driver is the only writer; no shared file system needed), or pass "
            "--allow-network-fs if only processes of one machine open this study"
        )
