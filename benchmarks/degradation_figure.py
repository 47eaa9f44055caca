"""The degradation figure (He et al. 2015, Fig. 6): training loss and error vs epoch.

    python benchmarks/degradation_figure.py runs/degrade \
        --out docs/figures/fmnist_degradation.png

Reads a finished study through the Python API (``odenet.studies.load_study``): its runs and
their per-epoch metrics. One colour per depth; plain solid, euler dashed, rk4 dash-dotted
(any other scheme dotted). Each line is the mean over the study's seeds at that (depth,
scheme), the band its min..max; the legend names n. The training loss and error are the ones
the trainer logs: averaged over each epoch's mini-batches, augmented, in train mode (the
quantity He et al. plot). Prints the per-(scheme, depth) final numbers as a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from matplotlib.figure import Figure

from odenet.files import atomic_write
from odenet.studies import load_study

_LINES = {"plain": "-", "euler": "--", "rk4": "-."}


def _curves(study_dir: Path) -> dict[tuple[str, int], list[list[dict]]]:
    """(scheme, depth) -> one list of per-epoch dicts per finished seed."""
    data = load_study(study_dir)
    curves: dict[tuple[str, int], list[list[dict]]] = defaultdict(list)
    for record in data.records:
        epochs = data.epochs.get(record.id, [])
        if record.status == "done" and epochs:
            curves[(record.solver, record.depth)].append(epochs)
        else:
            print(f"left out {record.id}: {record.status}, {len(epochs)} epochs", file=sys.stderr)
    return curves


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {std:.3f}"


def _pct(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def table(curves: dict[tuple[str, int], list[list[dict]]]) -> str:
    """Final-epoch train loss, train acc and test acc per (scheme, depth): mean ± sample std."""
    lines = [
        "| scheme | depth | n seeds | final train loss | final train acc % | test acc % |",
        "|---|---|---|---|---|---|",
    ]
    for (scheme, depth), runs in sorted(curves.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        last = [r[-1] for r in runs]
        lines.append(
            f"| {scheme} | {depth} | {len(runs)} | {_mean_std([e['train_loss'] for e in last])}"
            f" | {_pct([e['train_acc'] for e in last])} | {_pct([e['test_acc'] for e in last])} |"
        )
    return "\n".join(lines)


def figure(curves: dict[tuple[str, int], list[list[dict]]], out: Path) -> None:
    """Two panels (training loss, training error %) vs epoch; PNG at 150 dpi."""
    depths = sorted({d for _, d in curves})
    colours = {d: f"C{i}" for i, d in enumerate(depths)}
    fig = Figure(figsize=(9.5, 3.8))
    ax_loss, ax_err = fig.subplots(1, 2)
    for (scheme, depth), runs in sorted(curves.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        n_epochs = min(len(r) for r in runs)
        xs = list(range(1, n_epochs + 1))
        style = {"color": colours[depth], "linestyle": _LINES.get(scheme, ":"), "marker": "o"}
        for ax, key, scale in ((ax_loss, "train_loss", 1.0), (ax_err, "train_acc", -100.0)):
            per_epoch = [[r[i][key] for r in runs] for i in range(n_epochs)]
            if scale < 0:  # accuracy -> error in percent
                per_epoch = [[100.0 + scale * v for v in vals] for vals in per_epoch]
            mean = [statistics.mean(v) for v in per_epoch]
            ax.plot(xs, mean, label=f"{scheme}-{depth} (n={len(runs)})", ms=3, **style)
            ax.fill_between(
                xs, [min(v) for v in per_epoch], [max(v) for v in per_epoch],
                color=colours[depth], alpha=0.12, linewidth=0,
            )  # fmt: skip
    ax_loss.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="training loss")
    ax_err.set(xlabel="epoch", ylabel="training error % (epoch mean)", title="training error")
    last_epoch = max(len(r) for runs in curves.values() for r in runs)
    for ax in (ax_loss, ax_err):
        ax.set_xticks(range(1, last_epoch + 1))
        ax.grid(alpha=0.3)
    ax_err.legend(fontsize=7, ncol=2)
    fig.suptitle("plain (solid) vs euler (dashed) vs rk4 (dash-dot); band: min..max over seeds")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=150))  # the one writer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/figures/fmnist_degradation.png"))
    args = parser.parse_args()
    curves = _curves(args.study_dir)
    if not curves:
        raise SystemExit(f"error: {args.study_dir} has no finished run; run the study first")
    figure(curves, args.out)
    print(table(curves))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
