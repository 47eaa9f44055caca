"""What a study's numbers stand on, in words: the recipe that trained its runs and the images
they were tested on (``recipe``), and how many seeds stand behind each plotted point
(``seeds_per_point``). The report prints both above its table; every figure carries them as a
footnote, so a figure copied into a paper still says what it shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from odenet.studies.robustness import Outcome
from odenet.training.config import TrainConfig

# Axes of every study: named by the figures' own axes and legends, not by the recipe.
_AXES = ("depth", "solver", "lr", "seed")


def _images(limit: int | None, split: str) -> str:
    if limit is None:
        return f"the full {split} split"
    return f"a fixed {limit:,}-image subset of the {split} split"


def recipe(base: TrainConfig, swept: Iterable[str] = ()) -> str:
    """One sentence: dataset and images, network family, optimiser and schedule. A swept
    setting (an axis of the study) is named as swept instead of given a value."""
    varied = set(_AXES) | set(swept)

    def value(name: str, text: str) -> str:
        return f"{name.replace('_', ' ')} swept" if name in varied else text

    m = base.model
    network = ", ".join(
        [
            value("arch", f"{m.arch} ResNet"),
            value("width", f"width {m.width}"),
            value("block", f"{m.block} blocks"),
            value("shortcut", f"shortcut {m.shortcut}"),
            value("norm", f"{m.norm or 'batch'} norm"),
        ]
    )
    sgd = (
        "SGD ("
        + ", ".join(
            [
                value("batch_size", f"batch {base.batch_size}"),
                value("momentum", f"momentum {base.momentum:g}"),
                value("nesterov", "Nesterov" if base.nesterov else "no Nesterov"),
                value("weight_decay", f"weight decay {base.weight_decay:g}"),
            ]
        )
        + ")"
    )
    schedule = value("schedule", f"{base.schedule} lr schedule")
    if base.warmup_epochs and "warmup_epochs" not in varied:
        schedule += f" after {base.warmup_epochs:g} warm-up epochs"
    extras = []
    if base.label_smoothing or "label_smoothing" in varied:
        extras.append(value("label_smoothing", f"label smoothing {base.label_smoothing:g}"))
    if "augment" in varied:
        extras.append("augmentation swept")
    else:
        extras.append(
            f"the dataset's augmentation (pad {base.pad})" if base.augment else "no augmentation"
        )
    train = value("limit_train", _images(base.limit_train, "training"))
    test = value("limit_test", _images(base.limit_test, "test"))
    return (
        f"{value('dataset', base.dataset)}: trained on {train}, tested on {test}; "
        f"{network}; {value('epochs', f'{base.epochs} epochs')} of {sgd}, {schedule}, "
        + ", ".join(extras)
        + "."
    )


def seeds_per_point(outcomes: Iterable[Outcome]) -> str:
    """How many finished seeds stand behind each (configuration, lr) point, e.g. "n = 2
    seeds per point" or "n = 1-3 seeds per point" (diverged and failed runs are not in a mean)."""
    counts = Counter(o.identity.configuration for o in outcomes if o.status == "done")
    if not counts:
        return "no finished run"
    lo, hi = min(counts.values()), max(counts.values())
    n = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"n = {n} seed{'s' if hi > 1 else ''} per point"
