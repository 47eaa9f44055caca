"""Terminal presentation of a training run: a progress bar per epoch and the final table."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from odenet.tables import rich_table
from odenet.training.config import TrainConfig
from odenet.training.results import EpochMetrics, TrainCallbacks, TrainResult


class EpochProgress(TrainCallbacks):
    """One rich progress bar per epoch (steps, loss, images/s), then the epoch's test metrics."""

    def __init__(self, console: Console, epochs: int, batch_size: int) -> None:
        self.console, self.epochs, self.batch_size = console, epochs, batch_size

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        self.bar = Progress(
            TextColumn(f"epoch {epoch}/{self.epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:,.0f} img/s"),
            console=self.console, transient=False,
        )  # fmt: skip
        self.task = self.bar.add_task("train", total=steps, loss=float("nan"), rate=0.0)
        self.start = time.perf_counter()
        self.bar.start()

    def on_step(self, epoch: int, step: int, loss: float) -> None:
        rate = step * self.batch_size / max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.task, completed=step, loss=loss, rate=rate)

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self.bar.stop()
        self.console.print(
            f"  test acc {metrics.test_acc:.4f}  test loss {metrics.test_loss:.4f}  "
            f"train acc {metrics.train_acc:.4f}  {metrics.seconds:.1f} s"
        )


def print_result(console: Console, config: TrainConfig, result: TrainResult) -> None:
    """The per-epoch table, the divergence (if any) and a one-line summary."""
    c = config
    header = ("epoch", "train loss", "train acc", "test loss", "test acc", "lr", "s", "img/s")
    cells = [
        [str(m.epoch), f"{m.train_loss:.4f}", f"{m.train_acc:.4f}", f"{m.test_loss:.4f}",
         f"{m.test_acc:.4f}", f"{m.lr:.4g}", f"{m.seconds:.1f}", f"{m.images_per_s:,.0f}"]
        for m in result.history
    ]  # fmt: skip
    model = c.model
    net = f"depth {model.depth}" if model.arch in ("cifar", "single") else model.arch
    if model.arch == "single":
        net = f"single-stage depth {model.depth} (downsample in {model.downsample})"
    title = f"odenet train: {c.dataset}, {net}, {model.solver} ({result.status})"
    table = rich_table(header, cells, title=title)
    console.print(table)
    if result.status == "diverged":
        console.print(
            f"diverged at epoch {result.diverged_epoch}, step {result.diverged_step} "
            f"(loss non-finite or above {config.divergence_threshold:g})"
        )
    acc = "n/a" if result.test_acc is None else f"{result.test_acc:.4f}"
    console.print(
        f"test acc {acc}  params {result.params:,}  {result.seconds:.1f} s on {result.device}"
    )
