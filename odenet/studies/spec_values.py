"""Typed values for study options: comma-separated lists, "FIELD=VALUE" assignments and any
TrainConfig setting's value (a flat name: ``weight_decay``, ``depth``, ``norm``), parsed by
the field's own annotation (int, float, bool, str, or one of them | None). Derived from
``odenet.training.config.SETTINGS``: a field added to TrainConfig or ModelConfig is parsed
here with no change."""

from __future__ import annotations

from odenet.errors import ConfigError
from odenet.training.config import SETTINGS

# The familiar axes of every study: TrainConfig field -> the options that sweep it.
FAMILIAR = {"depth": "--depths", "solver": "--orders/--solvers", "lr": "--lrs", "seed": "--seeds"}
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")  # and "auto" for a bool | None field (its None means auto)


def parse_list(text: str, kind: type, option: str) -> tuple:
    """Parse a comma-separated option value ("0.1,0.2") into a tuple of ``kind``.

    An empty list, an empty item ("0.1,,0.2") or an item that is not a ``kind`` raises a
    ConfigError naming the option.
    """
    items = [item.strip() for item in str(text).split(",")]
    if items == [""]:
        raise ConfigError(f"--{option}: empty list; give comma-separated values, e.g. 1,2")
    out = []
    for item in items:
        if not item:
            raise ConfigError(f"--{option}: empty item in {text!r}; write e.g. 0.1,0.2")
        out.append(scalar(item, kind, option))
    return tuple(out)


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """ "FIELD=VALUE" -> (field, value text); the field must be a TrainConfig setting."""
    name, sep, value = str(text).partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise ConfigError(f"--{option} {text!r}: write FIELD=VALUE, e.g. weight_decay=5e-4")
    if name not in SETTINGS:
        valid = ", ".join(f for f in SETTINGS if f not in FAMILIAR)
        raise ConfigError(f"--{option}: unknown field {name!r}; TrainConfig fields: {valid}")
    if name in FAMILIAR:
        raise ConfigError(f"--{option}: {name} is an axis of every study: use {FAMILIAR[name]}")
    return name, value.strip()


def coerce_value(name: str, value: object, source: str) -> object:
    """One value of TrainConfig setting ``name``, typed by its annotation (text is parsed)."""
    kind, optional = SETTINGS[name].kind, SETTINGS[name].optional
    where = f"--{name.replace('_', '-')}" if source == "options" else f"{source} {name}"
    words = _NONE + (("auto",) if kind is bool else ())
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in words):
        if not optional:
            raise ConfigError(f"{where}: a value is required (it cannot be none)")
        return None
    return scalar(value, kind, where.lstrip("-"))


def coerce_axis(name: str, values: tuple, source: str) -> tuple:
    """The values of a swept TrainConfig setting, each typed as by ``coerce_value``."""
    if not values:
        raise ConfigError(f"{source} {name}: empty list; give at least one value")
    return tuple(coerce_value(name, v, source) for v in values)


def scalar(value: object, kind: type, option: str) -> object:
    """``value`` as a ``kind`` (int, float, bool or str); ConfigError naming ``option``."""
    what = {int: "an integer", float: "a number", str: "a name", bool: "true or false"}[kind]
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"--{option}: {value!r} is not {what}")
    if isinstance(value, bool):
        raise ConfigError(f"--{option}: {value!r} is not {what}")
    try:
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            return int(value)
        if kind is str and not isinstance(value, str):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{option}: {value!r} is not {what}") from None
