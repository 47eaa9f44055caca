"""The one writer of odenet's files (imports nothing of odenet but its error types: every layer
may use it).

Every file odenet writes (checkpoints, results, figures, report.md, exported CSVs, analysis
outputs, downloads, caches) goes through ``atomic_write``: the content goes to a new, uniquely
named temp file in the target's directory, is flushed and fsynced, and the temp file is then
renamed over the target. Hence:

* a reader never sees half a file, and concurrent writers never share a temp file (the last
  rename wins);
* whatever stood at the target is replaced, never written through: a hard link or a symlink
  there is swapped for the new file, and the file it shared its data with is left as it was;
* the file gets the mode ``open()`` would give it: 0666 less the process's umask (0644 under
  the usual umask 022), so files of a study are readable to whoever may read the directory;
* a full disk is ``DiskFull`` naming the file, however the writer reported it (torch and
  numpy raise their own errors over the OSError beneath: "enforce fail at inline_container.cc").
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from odenet.errors import DiskFull

if TYPE_CHECKING:  # matplotlib is heavy and only the figures' writers need it
    from matplotlib.figure import Figure


def atomic_write(
    path: str | Path, write: Callable[[BinaryIO], object], *, temp_stem: str | None = None
) -> Path:
    """Call ``write(f)`` on a new temp file beside ``path``, then rename it into place.

    ``f`` is a binary file opened on the temp file (``f.name`` is its path, e.g. for checking
    the content before it is published); raising from ``write`` leaves ``path`` untouched. The
    parent directory is created when missing. On any error the temp file is removed and the
    error raised; one that comes from a full disk as ``DiskFull(path)``. Returns ``path``.
    ``temp_stem``: the temp file's name in place of the target's (``.STEM.<random>.tmp``), for
    a directory whose readers pick files by their names (TensorBoard reads every file named
    ``*tfevents*``, a temp file included).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        f, tmp = _new_temp(path, temp_stem or path.name)
    except OSError as err:
        if _no_space(err) and not isinstance(err, DiskFull):
            raise DiskFull(path) from err
        raise
    try:
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never its target
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if _no_space(err) and not isinstance(err, DiskFull):
            raise DiskFull(path) from err
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, temp_stem: str | None = None) -> Path:
    """``data`` as the whole content of ``path`` (``atomic_write``)."""
    return atomic_write(path, lambda f: f.write(data), temp_stem=temp_stem)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) as the whole content of ``path`` (``atomic_write``)."""
    return atomic_write_bytes(path, text.encode())


def write_figure(
    fig: Figure, stem: str | Path, *, dpi: float, bbox_inches: str | None = None
) -> list[Path]:
    """``fig`` as ``stem.png`` (``dpi`` dots per inch) and ``stem.svg`` (vector; anything
    rasterized at the figure's own dpi), each through ``atomic_write``; the two paths.
    ``stem`` is a path without the suffix (a dot in its name stays part of the name)."""
    stem = Path(stem)
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    atomic_write(png, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches=bbox_inches))
    atomic_write(svg, lambda f: fig.savefig(f, format="svg", bbox_inches=bbox_inches))
    return [png, svg]


def _no_space(err: BaseException) -> bool:
    """Whether ``err``, or an error it was raised over, is the file system's "no space left"
    (ENOSPC, or EDQUOT: a full quota)."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _new_temp(path: Path, stem: str) -> tuple[BinaryIO, Path]:
    """A new file beside ``path`` opened for writing, and its path. Created exclusively with
    mode 0666 (the kernel applies the umask, as for any ``open``), named ``.STEM.<random>.tmp``
    (the stem: the target's name) so that a directory listing shows it as a hidden leftover
    should a crash leave it."""
    while True:
        tmp = path.with_name(f".{stem}.{secrets.token_hex(6)}.tmp")
        try:
            return open(tmp, "xb"), tmp  # noqa: SIM115 - closed by atomic_write
        except FileExistsError:
            continue
