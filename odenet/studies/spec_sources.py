"""A StudySpec from its sources: a TOML file, then explicit options, ``--set FIELD=VALUE``
and ``--axis FIELD=V1,V2``. The command line wins over the TOML file per field; on the command
line each setting is given once (an option, a --set or an --axis: two of them are refused,
never resolved silently). In TOML and with --axis a TrainConfig setting given a list is
swept; a scalar (or --set) sets it for every run."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from odenet.errors import ConfigError
from odenet.studies.spec import EXECUTION, LISTS, StudySpec, check_sweepable
from odenet.studies.spec_values import (
    FAMILIAR,
    coerce_axis,
    coerce_value,
    parse_assignment,
    parse_list,
    scalar,
)
from odenet.training.config import SETTINGS, TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged as tomli
    import tomli as tomllib

Values = str | Sequence | None  # a list option: "0.1,0.2", a sequence, or None (not given)
MAX_CONFIG_BYTES = 1 << 20  # a study file is a few lines; more is not one (or /dev/zero)


def spec_from_sources(
    config: str | Path | None = None,
    *,
    orders: Values = None,
    solvers: Values = None,
    depths: Values = None,
    lrs: Values = None,
    seeds: Values = None,
    settings: Mapping[str, object] | None = None,
    sets: Sequence[str] = (),
    axes: Sequence[str] = (),
    executor: str | None = None,
    fuse_max: int | None = None,
    tensorboard: bool | None = None,
    lease_grace: float | None = None,
) -> StudySpec:
    """The StudySpec of an optional TOML file overlaid with explicit options (checked when made).

    None means "not given" (the TOML file's value, else the default). The familiar axes may be
    strings ("0.1,0.2") or sequences; ``settings``: TrainConfig settings by flat name (a
    command's typed options, e.g. ``{"epochs": 2, "width": 4}``); ``sets``: "FIELD=VALUE"
    strings (one value for the whole study); ``axes``: "FIELD=V1,V2,..." strings (a swept
    setting). These win over the TOML file; among them a setting given twice is refused.
    Raises ConfigError naming the option.
    """
    values: dict = {}
    if config is not None:
        values.update(load_toml(config))
    given = dict(orders=orders, solvers=solvers, depths=depths, lrs=lrs, seeds=seeds,
                 executor=executor, fuse_max=fuse_max, tensorboard=tensorboard,
                 lease_grace=lease_grace, **(settings or {}))  # fmt: skip
    given = {k: v for k, v in given.items() if v is not None}
    flags = {k: "--" + k.replace("_", "-") for k in given}  # field -> the flag that gave it
    values.update(_coerce(given, source="options"))
    for text in sets:
        name, value = parse_assignment(text, "set")
        _given_once(flags, name, f"--set {text}")
        values[name] = coerce_value(name, value, "--set")
    for text in axes:
        name, value = parse_assignment(text, "axis")
        check_sweepable(name)  # a setting that cannot be swept says so first
        _given_once(flags, name, f"--axis {text}")
        values[name] = coerce_axis(name, parse_list(value, str, f"axis {name}"), "--axis")
    return _build(values)


def _given_once(flags: dict[str, str], name: str, flag: str) -> None:
    """Record that ``flag`` gives setting ``name``; ConfigError when another flag did: a
    setting given twice (set and swept, or swept twice) is refused, never resolved silently."""
    if name in flags:
        raise ConfigError(
            f"{name} is given twice ({flags[name]} and {flag}); give it once: one value, or "
            "every value of its axis in one list"
        )
    flags[name] = flag


def load_toml(path: str | Path) -> dict:
    """Study settings from a TOML file: top-level keys or a ``[study]`` table.

    Keys: orders, solvers, depths, lrs, seeds (arrays or comma-separated strings), executor,
    fuse_max, tensorboard (true/false), lease_grace (seconds) and any TrainConfig setting
    (dashes allowed: ``limit-train``); a setting given an array is swept. Raises ConfigError
    for a missing, unreadable or malformed file.
    """
    path = Path(path)
    where = f"--config {str(path)!r}"
    try:
        if not path.exists():
            raise ConfigError(f"--config: no such file {str(path)!r}")
        if not path.is_file():  # a directory, a device (/dev/zero), a pipe
            raise ConfigError(f"{where} is not a regular file; give a TOML study file")
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # never more, whatever the file claims
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{where} is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a study file"
            )
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{where} is not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start}); "
            "TOML files are UTF-8"
        ) from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise ConfigError(f"{where}: arrays or tables nested too deeply for a study file") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else err
        raise ConfigError(f"--config: cannot read {str(path)!r} as TOML: {reason}") from None
    if isinstance(data.get("study"), dict):
        data = data["study"]
    keys: dict[str, str] = {}  # setting -> the key that gave it (limit-train, limit_train)
    for key in data:
        _given_once(keys, key.replace("-", "_"), f"key {key!r} of {where}")
    return _coerce({k.replace("-", "_"): v for k, v in data.items()}, source=f"--config {path}")


def _build(values: dict) -> StudySpec:
    """A StudySpec from coerced values: a tuple for a TrainConfig setting is an axis."""
    settings = {k: v for k, v in values.items() if k in SETTINGS}
    base = {k: v for k, v in settings.items() if not isinstance(v, tuple)}
    return StudySpec(
        base=TrainConfig().replace(**base),
        sweep={k: v for k, v in settings.items() if k not in base},
        **{k: v for k, v in values.items() if k not in settings},
    )


def _coerce(data: dict, source: str) -> dict:
    """Typed values: the familiar axes as tuples, TrainConfig settings by their annotation (a
    list: an axis), executor, fuse_max, tensorboard and lease_grace as given. Unknown keys raise
    ConfigError."""
    out: dict = {}
    for key, value in data.items():
        option = key.replace("_", "-")
        if key in LISTS:
            kind = LISTS[key]
            if isinstance(value, str):
                value = parse_list(value, kind, option) if value.strip() or key != "solvers" else ()
            elif isinstance(value, (list, tuple)):
                value = tuple(scalar(v, kind, option) for v in value)
            else:
                raise ConfigError(f"--{option}: expected a list, got {value!r}")
        elif key in FAMILIAR:
            raise ConfigError(f"{source}: {key!r} is an axis of every study: use {FAMILIAR[key]}")
        elif key in SETTINGS:
            if isinstance(value, (list, tuple)):
                value = coerce_axis(key, tuple(value), source)
            else:
                value = coerce_value(key, value, source)
        elif key == "fuse_max":
            value = scalar(value, int, option)
        elif key == "tensorboard":
            value = scalar(value, bool, option)
        elif key == "lease_grace":
            value = scalar(value, float, option)
        elif key != "executor":
            valid = [*LISTS, *EXECUTION, *(f for f in SETTINGS if f not in FAMILIAR)]
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        out[key] = value
    return out
