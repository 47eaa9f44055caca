"""Sizes a user can type, checked before anything is allocated: the one comparison of an
estimate with this machine's memory, and the one cap on a count, each with one message.

Every kind of work estimates its own need where it knows its sizes (a network:
``odenet.nets.memory``; a dataset held in memory: ``odenet.data.memory``; a study's grid:
``odenet.studies.spec``; a loss-surface grid and the Arnoldi spectra: ``odenet.analysis``) and
asks here whether it fits. A refusal is a ConfigError (exit code 2 at the command line) that
names the size, the machine's memory or the cap, and the option that fixes it: in seconds, not
after minutes of allocation or an OOM kill.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from odenet.errors import ConfigError


def check_memory(need: int, what: str, fix: str, detail: str = "") -> None:
    """ConfigError "<what> needs about <need><detail>, more than this machine's <memory> of
    memory; <fix>" when ``need`` bytes exceed the physical memory. No check where the amount
    of memory is unknown."""
    have = total_memory()
    if have is None or need <= have:
        return
    raise ConfigError(
        f"{what} needs about {format_bytes(need)}{detail}, more than this machine's "
        f"{format_bytes(have)} of memory; {fix}"
    )


def check_count(count: int, limit: int, what: str, fix: str) -> None:
    """ConfigError "<what> is <count>, more than the <limit> odenet allows; <fix>"."""
    if count > limit:
        raise ConfigError(f"{what} is {count:,}, more than the {limit:,} allowed; {fix}")


@functools.cache  # the machine's memory does not change while it runs (read once)
def total_memory() -> int | None:
    """Physical memory in bytes (Linux /proc/meminfo, else sysconf); None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def format_bytes(n: int) -> str:
    """``1536`` -> "1.5 KiB"; KiB up to PiB (larger amounts in PiB)."""
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KiB"
