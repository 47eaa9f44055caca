"""Locate, download and verify dataset files.

A file ``F`` of dataset ``NAME`` is looked up, in order, at

1. ``<data_dir>/NAME/F``            (``--data-dir``, when given)
2. ``$ODENET_DATA/NAME/F``          (when the variable is set)
3. ``~/.cache/odenet/NAME/F``
4. ``/usr/share/datasets/NAME/F``   (Debian's dataset packages, e.g. dataset-fashion-mnist)

The first copy whose md5 matches the published value is used. A copy that does not match is
corrupt or partial and is ignored; when no copy matches, the file is downloaded into the first
of the user locations 1-3 that applies (replacing a corrupt copy there). Downloads go through
the atomic writer (odenet.files): a temp file renamed into place only after its md5 matches.

Mirrors: ``MIRRORS`` maps a dataset to base URLs (tests monkeypatch it); ``$ODENET_MIRROR``,
when set, is tried first as ``$ODENET_MIRROR/NAME/F``.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from odenet.data.formats import gunzip
from odenet.errors import DataError
from odenet.files import atomic_write

DATA_ENV = "ODENET_DATA"
MIRROR_ENV = "ODENET_MIRROR"
SYSTEM_DIR = Path("/usr/share/datasets")
CHUNK = 1 << 20


@dataclass(frozen=True)
class Resource:
    """One published file and its checksums."""

    filename: str  # name on the server and on disk
    md5: str  # published md5 of the file as distributed
    # Published md5 of the decompressed payload of a .gz file, or None. It accepts a copy that
    # was re-compressed (Debian's dataset-fashion-mnist ships the same idx bytes in gzip files
    # without the original file-name header, so their .gz md5 differs from the published one).
    content_md5: str | None = None


MIRRORS: dict[str, tuple[str, ...]] = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/",),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",),
}


def md5_file(path: Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)  # integrity check against published sums
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, resource: Resource) -> bool:
    """True when ``path`` holds ``resource``: its md5, or its decompressed payload's md5."""
    if md5_file(path) == resource.md5:
        return True
    if resource.content_md5 is None:
        return False
    try:
        payload = gunzip(path)
    except DataError:
        return False
    return hashlib.md5(payload, usedforsecurity=False).hexdigest() == resource.content_md5


def _cache_dir() -> Path:
    return Path.home() / ".cache" / "odenet"


def user_dirs(data_dir: str | Path | None) -> list[Path]:
    """The user-controlled roots in lookup order: data_dir, $ODENET_DATA, ~/.cache/odenet."""
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]).expanduser())
    roots.append(_cache_dir())
    return roots


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Every directory searched for dataset ``name``, in order (see the module docstring)."""
    return [root / name for root in [*user_dirs(data_dir), SYSTEM_DIR]]


def download_dir(name: str, data_dir: str | Path | None = None) -> Path:
    """Where a missing file of ``name`` is downloaded to: the first user root + name."""
    return user_dirs(data_dir)[0] / name


def urls(name: str, filename: str) -> list[str]:
    """Candidate URLs for a file: $ODENET_MIRROR first (when set), then MIRRORS[name]."""
    out = []
    if os.environ.get(MIRROR_ENV):
        out.append(f"{os.environ[MIRROR_ENV].rstrip('/')}/{name}/{filename}")
    out.extend(base.rstrip("/") + "/" + filename for base in MIRRORS.get(name, ()))
    return out


def ensure_file(
    name: str,
    resource: Resource,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """Path of a verified copy of ``resource`` for dataset ``name``; fetch it if needed.

    Raises DataError when no verified copy exists and it cannot be downloaded (or download is
    False); the message names the file, its md5 and the directory to place it in.
    """
    corrupt = []
    for directory in search_dirs(name, data_dir):
        path = directory / resource.filename
        if path.is_file():
            if verify(path, resource):
                return path
            corrupt.append(str(path))
    target = download_dir(name, data_dir) / resource.filename
    found = f" (corrupt or partial copies ignored: {', '.join(corrupt)})" if corrupt else ""
    searched = ", ".join(str(d) for d in search_dirs(name, data_dir))
    place = f"place {resource.filename} (md5 {resource.md5}) in {target.parent}"
    place += f" (searched: {searched})"
    if not download:
        missing = f"{name}: {resource.filename} not found{found}"
        raise DataError(f"{missing}; downloading is off: {place}")
    errors = []
    for url in urls(name, resource.filename):
        try:
            _download(url, target, resource, progress=progress)
            return target
        except DataError as err:
            errors.append(str(err))
    why = "; ".join(errors) if errors else "no download URL is known"
    raise DataError(f"{name}: cannot download {resource.filename} ({why}){found}; {place}")


def _download(url: str, target: Path, resource: Resource, *, progress: bool) -> None:
    """Stream ``url`` into ``target`` through the atomic writer: the temp file beside it is
    renamed into place only if it verifies."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {target.parent} ({err.strerror or err})") from None

    def write(out) -> None:
        _stream(url, out, target.name, progress=progress)
        out.flush()
        tmp = Path(out.name)  # the writer's temp file: published only if it verifies
        if not verify(tmp, resource):
            raise DataError(f"{url}: md5 {md5_file(tmp)} does not match {resource.md5}")

    atomic_write(target, write)


def _stream(url: str, out, label: str, *, progress: bool) -> None:

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (http/https/file)
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = Progress(*columns, console=Console(stderr=True), disable=not progress)
            with bar:
                task = bar.add_task(f"downloading {label}", total=total)
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
    except (OSError, http.client.HTTPException, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise DataError(f"{url}: {reason}") from None
