"""A run's identity is its axes: where it sits in its study's grid.

Every run of a study is one point of the grid: a value on every axis, in grid order (depth,
scheme, lr, each swept TrainConfig field of ``StudySpec.swept``, seed). ``Axes`` holds such a
point (or a part of one), and it is the one thing the report, the robustness table, the
figures and the analyses (``odenet analyze``, ``odenet landscape``) select, group and label runs
by:

* a run's ``RunRecord.axes``: every axis;
* its **configuration**, every axis but seed: the runs of one configuration are its seeds, and
  the only runs ever averaged together (each mean says n, the seeds behind it);
* its **cell**, every axis but lr and seed: a robustness row, where the best lr is chosen;
* its **variant**, every axis but depth, lr and seed (the scheme and the swept values): one
  line (a colour) of a figure whose panels are depths or lrs.

Axes are hashable and compared exactly; ``label`` writes a variant as "rk4" or
"rk4 downsample=field". ``axis_value`` is the one place that reads a swept axis's value from a
run's config.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from odenet.training.config import TrainConfig

# The axes every study has, in grid order; the swept fields sit between lr and seed.
FAMILIAR = ("depth", "solver", "lr", "seed")


def axis_value(config: TrainConfig, name: str) -> object:
    """The value of axis ``name`` (a setting's flat name, ``TrainConfig.value``) in a run's
    config."""
    return config.value(name)


@dataclass(frozen=True)
class Axes:
    """A point on some of a study's axes: (axis, value) pairs in grid order."""

    items: tuple[tuple[str, object], ...]

    @classmethod
    def of_run(
        cls, depth: int, solver: str, lr: float, seed: int, swept: Iterable[tuple[str, object]] = ()
    ) -> Axes:
        """Every axis of one run: depth, solver, lr, the swept (field, value) pairs, seed."""
        return cls((("depth", depth), ("solver", solver), ("lr", lr), *swept, ("seed", seed)))

    @classmethod
    def of_config(cls, depth: int, solver: str, lr: float, seed: int, config: TrainConfig,
                  swept: Iterable[str]) -> Axes:  # fmt: skip
        """A run's axes: the familiar ones as given, each swept field read from its config."""
        return cls.of_run(depth, solver, lr, seed, ((n, axis_value(config, n)) for n in swept))

    def __getitem__(self, name: str) -> object:
        for key, value in self.items:
            if key == name:
                return value
        raise KeyError(f"no axis {name!r} in {self.describe()}")

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.items)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.items)

    def without(self, *names: str) -> Axes:
        """These axes less ``names``."""
        return Axes(tuple((k, v) for k, v in self.items if k not in names))

    @property
    def swept(self) -> tuple[tuple[str, object], ...]:
        """The (field, value) pairs of the swept axes (every axis but the familiar ones)."""
        return tuple((k, v) for k, v in self.items if k not in FAMILIAR)

    @property
    def configuration(self) -> Axes:
        """Every axis but seed: the runs that are seeds of one configuration share it."""
        return self.without("seed")

    @property
    def cell(self) -> Axes:
        """Every axis but lr and seed: where the best lr is chosen."""
        return self.without("lr", "seed")

    @property
    def variant(self) -> Axes:
        """Every axis but depth, lr and seed: the scheme and the swept values."""
        return self.without("depth", "lr", "seed")

    def label(self) -> str:
        """The scheme and the swept values: "rk4", "rk4 weight_decay=0.0005"."""
        parts = [str(self["solver"])] if "solver" in self else []
        return " ".join(parts + [f"{k}={v}" for k, v in self.swept])

    def describe(self) -> str:
        """Every axis held, in grid order: "depth 14, rk4, downsample=field, lr 0.1, seed 0"."""
        words = {"depth": "depth {}", "solver": "{}", "lr": "lr {:g}", "seed": "seed {}"}
        return ", ".join(words[k].format(v) if k in words else f"{k}={v}" for k, v in self.items)
