"""Strict JSON out of odenet: no NaN or Infinity (not JSON; many parsers refuse them).

A non-finite float (a diverged run's loss, a missing mean) becomes null. Used by every
``--json`` output and ``StudyData.to_json``; ``dumps`` checks with ``allow_nan=False``.
"""

from __future__ import annotations

import json
import math


def finite(obj: object) -> object:
    """``obj`` with every non-finite float replaced by None (dicts, lists, tuples walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: object, **kwargs: object) -> str:
    """``json.dumps`` of ``finite(obj)``; raises ValueError should a non-finite float remain."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)
