"""A study directory's layout: which part of odenet owns which path, and what an export
(``report --csv``) may never be.

::

    <study>/study.sqlite[-wal|-shm|-journal]   store: the database (SQLite's side files)
    <study>/runs/<run id>/                     store: checkpoint.pt, result.json
    <study>/figures/  <study>/report.md        report (``odenet report``)
    <study>/analysis/                          analysis (``odenet analyze``)
    <study>/landscape/                         analysis (``odenet landscape``)
    <study>/{analysis,landscape}/section.md    analysis: its section of report.md
    <study>/tensorboard/<run id>/              training's curves as TensorBoard event files,
                                               written by odenet.studies.tensorboard

Anything else in the directory (an exported CSV, a user's notes) is the user's. Every part
asks the layout for its paths rather than spelling the names itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from odenet.errors import ConfigError

DB_NAME = "study.sqlite"
# The files SQLite keeps beside the database (WAL, shared memory, rollback journal).
DB_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class StudyLayout:
    """The paths of one study directory ``root`` (nothing is created or checked when built)."""

    root: Path

    # ---- the store's --------------------------------------------------------------------
    @property
    def database(self) -> Path:
        return self.root / DB_NAME

    @property
    def database_files(self) -> tuple[Path, ...]:
        """The database and the files SQLite may keep beside it (present or not)."""
        return (self.database, *(self.root / (DB_NAME + s) for s in DB_SIDE_FILES))

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run_dir(self, run_id: str) -> Path:
        """A run's checkpoint.pt and result.json."""
        return self.runs / run_id

    # ---- the report's -------------------------------------------------------------------
    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    # ---- analysis's ---------------------------------------------------------------------
    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    @property
    def landscape(self) -> Path:
        return self.root / "landscape"

    # ---- training's ---------------------------------------------------------------------
    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    # ---- ownership ----------------------------------------------------------------------
    def owned(self) -> dict[Path, str]:
        """Every path some part of odenet owns -> its owner ("store", "report", "analysis",
        "training"); a folder's whole content is its owner's."""
        return {
            **dict.fromkeys(self.database_files, "store"),
            self.runs: "store",
            self.figures: "report",
            self.report: "report",
            self.analysis: "analysis",
            self.landscape: "analysis",
            self.tensorboard: "training",
        }

    def owner(self, path: str | Path) -> str | None:
        """Who owns ``path``: the owner of the owned path it is or is inside (taken as written
        and with its symlinks resolved), or of the owned file it is another name for (a hard
        link); None when it is nobody's (the user's)."""
        found = self._owner_by_place(Path(path))
        if found is None and (twin := self.same_file(path)) is not None:
            found = self._owner_by_place(twin)
        return found

    def same_file(self, path: str | Path) -> Path | None:
        """The owned file that the existing file ``path`` is the same file as (device and
        inode: a hard link, or a symlink to it), or None."""
        try:
            st = Path(path).stat()
        except OSError:  # missing (or unreadable): not an existing file of the study
            return None
        if st.st_nlink < 2 and self._owner_by_place(Path(path).resolve()) is None:
            return None  # a file with one name, outside the owned paths
        for place in self.owned():
            for file in _files(place):
                try:
                    if os.path.samestat(st, file.stat()):
                        return file
                except OSError:
                    continue
        return None

    def check_export(self, path: str | Path, option: str = "--csv") -> Path:
        """``path`` (absolute) if a file exported from the study may be written there; a
        one-line ConfigError naming ``option`` otherwise. Writes nothing.

        Refused: an owned path or anything inside one (the database and its side files,
        runs/, figures/, report.md, analysis/, landscape/, tensorboard/), as written or with
        symlinks resolved; an existing file that is one of their files under another name (a
        hard link); a directory; a missing or unwritable parent directory.
        """
        target = Path(path).expanduser().absolute()
        if self._owner_by_place(target) is not None:
            raise ConfigError(
                f"{option} {str(path)!r} is inside the study's own files ({self._names()}); "
                "choose a path outside them, e.g. runs.csv"
            )
        twin = self.same_file(target)
        if twin is not None:
            raise ConfigError(
                f"{option} {str(path)!r} is another name (a hard link) for the study's own "
                f"{str(twin)!r}; choose a path that is not a link to a study file, e.g. runs.csv"
            )
        if target.is_dir():
            raise ConfigError(f"{option} {str(path)!r} is a directory; give a file name")
        if not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
            raise ConfigError(
                f"{option} {str(path)!r}: {str(target.parent)!r} is not a writable directory; "
                "choose another path"
            )
        return target

    def _owner_by_place(self, path: Path) -> str | None:
        """The owner of the owned path that ``path`` is or is inside, as written or resolved."""
        owned = [(p, owner) for place, owner in self.owned().items() for p in _spellings(place)]
        for candidate in _spellings(path):
            for place, owner in owned:
                if candidate == place or place in candidate.parents:
                    return owner
        return None

    def _names(self) -> str:
        """The owned names as a reader knows them: study.sqlite*, runs/, figures/, ..."""
        names = [DB_NAME + "*"]
        for place in self.owned():
            if place not in self.database_files:
                names.append(place.name + ("" if place.suffix else "/"))
        return ", ".join(names)


def _spellings(path: Path) -> tuple[Path, Path]:
    """``path`` absolute and normalised as written, and with its symlinks resolved."""
    return Path(os.path.normpath(path.expanduser().absolute())), path.expanduser().resolve()


def _files(place: Path) -> Iterator[Path]:
    """``place`` itself when it is a file, else every file below it."""
    if place.is_file():
        yield place
    elif place.is_dir():
        for folder, _, names in os.walk(place):
            for name in names:
                yield Path(folder) / name
