"""Bring-your-own images: ``imagefolder:PATH[,size=N]`` as an in-memory uint8 dataset.

Layout: ``PATH/train/<class>/*`` and ``PATH/val/<class>/*`` (the val split is the test split).
Files ending in .png, .jpg or .jpeg (any case) are images; hidden files and other files are
ignored; an image name that leads nowhere (a dangling symbolic link) is an unreadable image.
Classes are the sub-folder names in sorted order (label i = i-th name); there must be at least
two, and both splits must have the same classes, each with at least one image.

Every image is decoded with Pillow, converted to RGB and resized to N x N (bilinear; the
aspect ratio is not kept; default N = 32) once: the uint8 arrays are cached beside the data
as ``PATH/.odenet-cache-<N>-<checksum>.npz``, where the checksum covers the file list (split,
class, name, size in bytes, modification time), so adding, removing or changing a file makes
a new cache (the stale one is removed). A read-only PATH just means no cache. Normalisation:
per-channel mean and (unbiased) std of the training split, in [0, 1] pixel units.

Problems with the folder (missing split, a single class, an empty class, class sets that
differ, an unreadable image, named) are ConfigError: one line, exit code 2 at the command line.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from odenet.errors import ConfigError
from odenet.files import atomic_write

PREFIX = "imagefolder"
DEFAULT_SIZE = 32  # N of N x N when the name gives no size=
SPLITS = ("train", "val")
EXTENSIONS = (".png", ".jpg", ".jpeg")
_LAYOUT = "expected PATH/train/<class>/*.png|jpg and PATH/val/<class>/*.png|jpg"


def parse_name(name: str) -> tuple[Path, int]:
    """``"imagefolder:PATH[,size=N]"`` -> (PATH, N). ConfigError when malformed."""
    head, _, rest = name.strip().partition(":")
    if head.lower() != PREFIX or not rest:
        raise ConfigError(f"dataset {name!r}: use imagefolder:PATH[,size=N]")
    path, size = rest, DEFAULT_SIZE
    base, sep, option = rest.rpartition(",")
    if sep and option.strip().lower().startswith("size="):
        path, value = base, option.split("=", 1)[1].strip()
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"dataset {name!r}: size must be a positive integer, got {value!r}")
        size = int(value)
    if not path.strip():
        raise ConfigError(f"dataset {name!r}: no PATH; use imagefolder:PATH[,size=N]")
    return Path(path.strip()).expanduser(), size


def scan(root: Path) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """(sorted class names, split -> [(image file, label)] in class then file-name order)."""
    if not root.is_dir():
        raise ConfigError(f"imagefolder {str(root)!r} is not a directory; {_LAYOUT}")
    found: dict[str, dict[str, list[Path]]] = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            raise ConfigError(f"imagefolder {str(root)!r}: no {split}/ folder; {_LAYOUT}")
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and _visible(p))
        if not classes:
            raise ConfigError(f"imagefolder {str(folder)!r} has no class folders; {_LAYOUT}")
        found[split] = {}
        for c in classes:
            files = sorted(p for p in (folder / c).iterdir() if _is_image(p))
            for f in files:
                if not f.exists():  # a symbolic link to nothing: not silently one image fewer
                    raise ConfigError(
                        f"imagefolder: cannot read image {str(f)!r} (a symbolic link to a "
                        "missing file); fix or remove it"
                    )
            if not files:
                raise ConfigError(
                    f"imagefolder: class {c!r} in {str(folder)!r} has no images "
                    f"({', '.join(EXTENSIONS)}); add some or remove the folder"
                )
            found[split][c] = files
    train, val = set(found["train"]), set(found["val"])
    if train != val:
        only_t = ", ".join(sorted(train - val)) or "-"
        only_v = ", ".join(sorted(val - train)) or "-"
        raise ConfigError(
            f"imagefolder {str(root)!r}: train/ and val/ have different classes "
            f"(only in train: {only_t}; only in val: {only_v})"
        )
    classes = sorted(train)
    if len(classes) < 2:
        raise ConfigError(
            f"imagefolder {str(root)!r} has one class ({classes[0]}); a classifier needs at "
            "least two class folders in train/ and val/"
        )
    return classes, {
        split: [(f, i) for i, c in enumerate(classes) for f in found[split][c]] for split in SPLITS
    }


def checksum(root: Path, items: dict[str, list[tuple[Path, int]]], size: int) -> str:
    """16 hex digits of sha256 over (size, and per file: path under root, bytes, mtime_ns)."""
    h = hashlib.sha256(f"odenet-imagefolder-v1 size={size}\n".encode())
    for split in SPLITS:
        for path, label in items[split]:
            st = path.stat()
            rel = path.relative_to(root).as_posix()
            h.update(f"{rel}\t{label}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_arrays(root: Path, size: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """(classes, {train_x, train_y, val_x, val_y}): uint8 (N, 3, size, size), int64 (N,).

    Read from the cache when its checksum matches, else decoded and cached.
    """
    classes, items = scan(root)
    cache = root / f".odenet-cache-{size}-{checksum(root, items, size)}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("train_x", "train_y", "val_x", "val_y")}
                cached_classes = [str(c) for c in z["classes"]]
            if cached_classes == classes:
                return classes, arrays
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    arrays = {}
    for split in SPLITS:
        files = items[split]
        x = np.empty((len(files), 3, size, size), dtype=np.uint8)
        for i, (path, _) in enumerate(files):
            x[i] = _decode(path, size)
        arrays[f"{split}_x"] = x
        arrays[f"{split}_y"] = np.array([label for _, label in files], dtype=np.int64)
    _write_cache(root, cache, size, classes, arrays)
    return classes, arrays


def _decode(path: Path, size: int) -> np.ndarray:
    """One image file -> uint8 (3, size, size): RGB, bilinear resize. ConfigError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"imagefolder: cannot read image {str(path)!r} ({reason}); fix or remove it"
        ) from None


def _write_cache(
    root: Path, cache: Path, size: int, classes: list[str], arrays: dict[str, np.ndarray]
) -> None:
    """Atomically write ``cache`` and remove stale caches of this size; skip if read-only."""
    try:
        atomic_write(cache, lambda f: np.savez(f, classes=np.array(classes), **arrays))
    except OSError:
        return  # read-only data (or a full disk): decode every time
    for old in root.glob(f".odenet-cache-{size}-*.npz"):
        if old != cache:
            old.unlink(missing_ok=True)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _is_image(path: Path) -> bool:
    """An image by its name: a file, or a link (a dangling one counts, to be refused by name)."""
    named = _visible(path) and path.suffix.lower() in EXTENSIONS
    return named and (path.is_file() or path.is_symlink())
