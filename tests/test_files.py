"""The one writer (odenet.files): whole files or none, the mode open() would give, links at
the target replaced and never written through."""

import os
import stat
from pathlib import Path

import pytest

from odenet.files import atomic_write, atomic_write_bytes, atomic_write_text, write_figure


@pytest.fixture
def umask():
    """Set the process umask for a test (returned: a setter); restored afterwards."""
    old = os.umask(0o022)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_new_files_get_the_mode_open_would_give(tmp_path, umask, mask):
    umask(mask)
    with open(tmp_path / "by-open", "wb"):
        pass
    written = atomic_write_text(tmp_path / "by-writer", "x")
    assert _mode(written) == 0o666 & ~mask == _mode(tmp_path / "by-open")


def test_a_replaced_private_file_becomes_group_readable(tmp_path, umask):
    """Files written by an older odenet (0600) get the usual mode when written again."""
    path = tmp_path / "result.json"
    path.write_text("old")
    path.chmod(0o600)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o644


def test_a_hard_link_at_the_target_is_replaced_not_written_through(tmp_path):
    other = tmp_path / "study.sqlite"
    other.write_bytes(b"SQLite format 3\0...")
    os.link(other, tmp_path / "h.csv")
    atomic_write_text(tmp_path / "h.csv", "id,depth\n")
    assert other.read_bytes() == b"SQLite format 3\0..."
    assert (tmp_path / "h.csv").read_text() == "id,depth\n"
    assert other.stat().st_nlink == 1


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path):
    other = tmp_path / "report.md"
    other.write_text("# report\n")
    (tmp_path / "link").symlink_to(other)
    atomic_write_bytes(tmp_path / "link", b"new")
    assert other.read_text() == "# report\n"
    assert not (tmp_path / "link").is_symlink() and (tmp_path / "link").read_bytes() == b"new"


def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"epoch 1")

    def torn(f):
        f.write(b"epoch 2, half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, torn)
    assert path.read_bytes() == b"epoch 1"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_write_sees_its_temp_file_beside_the_target_and_parents_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    seen = []

    def write(f):
        f.write(b"data")
        f.flush()
        seen.append(Path(f.name))
        assert Path(f.name).read_bytes() == b"data" and not target.exists()

    assert atomic_write(target, write) == target
    (tmp,) = seen
    assert tmp.parent == target.parent and tmp.name.startswith(".file.bin.")
    assert not tmp.exists() and target.read_bytes() == b"data"
    # a temp name without the target's, for readers that pick files by name (TensorBoard)
    events = tmp_path / "events.out.tfevents.b.1"
    atomic_write(events, lambda f: seen.append(Path(f.name)), temp_stem="odenet-events")
    assert seen[1].name.startswith(".odenet-events.") and "tfevents" not in seen[1].name
    assert events.is_file() and not seen[1].exists()


def test_write_figure_writes_png_and_svg_keeping_dots_in_the_name(tmp_path, umask):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [1, 0])
    paths = write_figure(fig, tmp_path / "figs" / "lr0.1", dpi=50, bbox_inches="tight")
    assert [p.name for p in paths] == ["lr0.1.png", "lr0.1.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and b"<svg" in paths[1].read_bytes()
    assert {_mode(p) for p in paths} == {0o644}
    assert sorted(p.name for p in paths[0].parent.iterdir()) == ["lr0.1.png", "lr0.1.svg"]


def test_concurrent_writers_never_share_a_temp_file(tmp_path):
    """A writer that starts while another is mid-write on the same file (what two
    `landscape` processes on one study do) must not clobber its temp file; the old
    "<name>.tmp" scheme failed here with FileNotFoundError at the outer rename."""
    target = tmp_path / "slice.json"

    def outer(fh) -> None:
        fh.write(b"outer")
        atomic_write_text(target, "inner")  # the other process, in the middle of ours

    atomic_write(target, outer)
    assert target.read_text() == "outer"
    assert [p.name for p in tmp_path.iterdir()] == ["slice.json"]  # no temp file left
