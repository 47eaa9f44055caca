"""A study process's lease grace period: its default, its check and the heartbeat interval it
implies. A floor below the study spec (an execution setting, ``StudySpec.lease_grace``) and the
store (``odenet.studies.store.leases``: what a lease is and how it is judged)."""

from __future__ import annotations

import math

from odenet.errors import ConfigError

DEFAULT_GRACE = 60.0  # seconds without a heartbeat after which a run may be taken over
MIN_GRACE = 1.0
MAX_INTERVAL = 10.0  # seconds between two renewals at most


def heartbeat_interval(grace: float) -> float:
    """Seconds between two renewals: every 10 s, or four per grace period when it is short."""
    return min(MAX_INTERVAL, grace / 4)


def check_grace(value: object) -> None:
    """ConfigError unless ``value`` is a finite number of seconds >= 1 (bool is not one)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < MIN_GRACE:
        raise ConfigError(
            f"--lease-grace must be a finite number of seconds >= {MIN_GRACE:g}, got {value!r}"
        )
