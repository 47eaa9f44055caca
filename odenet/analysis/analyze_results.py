"""What ``odenet analyze`` returns: a typed result per run (``RunAnalysis``), the means over
the seeds of each configuration (``ConfigurationMeans``, odenet.studies.identity: every axis
but seed; with ``--ode-tests`` also the ODE tests' means, odenet.analysis.ode_results), the
flat form of a run's measurements (``field_table``: a row per field) and the terminal
tables."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Group

from odenet.analysis.ode_results import OdeMeans, ode_tables
from odenet.strict_json import finite
from odenet.studies.identity import Axes
from odenet.tables import FlatTable, rich_table


@dataclass(frozen=True)
class RunAnalysis:
    """One analysed run: where it sits in the study, and what was measured."""

    axes: Axes  # the run's axes (RunRecord.axes)
    values: dict  # the run's facts and ``analyze_model``'s measurements (what is cached)
    cached: bool = False  # found in the store under the same settings

    def to_dict(self) -> dict:
        """The values with each swept field as its own key, and ``cached``."""
        return {**self.values, **dict(self.axes.swept), "cached": self.cached}


@dataclass(frozen=True)
class ConfigurationMeans:
    """Means over the n seeds of one configuration (every axis but seed)."""

    axes: Axes  # the configuration
    n: int  # seeds behind the means
    seeds: list[int]
    test_acc: float | None
    response: float | None  # mean over fields of each run, then over seeds
    step_ratio: float | None
    eig_abs: float | None  # mean |z| of the fields with eigenvalues
    outside_region: float | None  # fields outside the stability region
    fields_with_region: int
    unconverged_fields: int | None  # unconverged field estimates, summed over the seeds
    ode: OdeMeans | None = None  # the ODE tests' means (``--ode-tests``), None when not run

    def to_dict(self) -> dict:
        """depth, scheme, each swept field as its own key, lr, then the means (the ODE tests'
        as "swap" and "refine" lists, when run)."""
        a = self.axes
        out = {"depth": a["depth"], "scheme": a["solver"], **dict(a.swept), "lr": a["lr"]}
        out |= {k: v for k, v in asdict(self).items() if k not in ("axes", "ode")}
        return out | (asdict(self.ode) if self.ode is not None else {})


@dataclass
class AnalyzeResult:
    settings: dict
    models: list[RunAnalysis]  # one per analysed run, in selection order
    table: list[ConfigurationMeans]  # one per configuration
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return finite(
            {
                "settings": self.settings,
                "models": [m.to_dict() for m in self.models],
                "table": [row.to_dict() for row in self.table],
                "figures": [str(p) for p in self.figures],
                "notes": self.notes,
            }
        )


FIELD_COLUMNS = (
    "field", "scheme", "response", "step_ratio", "grad_param", "grad_state",
    "grad_param_initial", "grad_state_initial", "eig_re", "eig_im", "eig_abs", "inside",
    "fraction_outside", "eig_residual", "eig_unconverged",
)  # fmt: skip


def field_table(values: dict) -> FlatTable:
    """A run's measurements as a row per field (network order): its response, step ratio,
    gradient norms (trained weights; initial ones, None when not measured) and dominant
    eigenvalue (None for a field without a square Jacobian) with ``inside`` its scheme's
    region (None without a region), the largest relative residual of its estimates and how
    many of them did not converge."""
    grads = values["grad_norms"]
    initial = grads["initial"] or {"params": None, "states": None}
    rows = []
    for i, (name, scheme) in enumerate(zip(values["fields"], values["schemes"], strict=True)):
        e = values["eigenvalues"][i]
        rows.append((
            name, scheme, values["responses"]["network_order"][i], values["step_ratios"][i],
            grads["trained"]["params"][i], grads["trained"]["states"][i],
            None if initial["params"] is None else initial["params"][i],
            None if initial["states"] is None else initial["states"][i],
            e["re"], e["im"], e["abs"], e["inside"], e["fraction_outside"], e["residual"],
            e["unconverged"],
        ))  # fmt: skip
    return FlatTable(FIELD_COLUMNS, tuple(rows), index=("field",))


def aggregate(models: list[RunAnalysis]) -> list[ConfigurationMeans]:
    """Per configuration (every axis but seed: runs that differ in any other axis are never
    averaged), means over its seeds: test accuracy, mean response, mean step ratio, mean |z|
    of the fields with eigenvalues, fields outside the region, and the total count of
    unconverged field estimates (over seeds; results cached before it: None). Ordered by
    depth, scheme name, swept values (in the order the runs come) and lr. Runs with the ODE
    tests (a "swap" key) give the configuration its ``OdeMeans``."""
    groups: dict[Axes, list[dict]] = {}
    for m in models:
        groups.setdefault(m.axes.configuration, []).append(m.values)
    swept = list(dict.fromkeys(c.swept for c in groups))

    def mean(values: list) -> float | None:
        vals = [v for v in values if v is not None and math.isfinite(v)]
        return sum(vals) / len(vals) if vals else None

    def order(c: Axes) -> tuple:
        return (c["depth"], c["solver"], swept.index(c.swept), c["lr"])

    return [
        ConfigurationMeans(
            axes=c,
            n=len(ms),
            seeds=sorted(m["seed"] for m in ms),
            test_acc=mean([m["test_acc"] for m in ms]),
            response=mean([mean(m["responses"]["network_order"]) for m in ms]),
            step_ratio=mean([mean(m["step_ratios"]) for m in ms]),
            eig_abs=mean([mean([e["abs"] for e in m["eigenvalues"]]) for m in ms]),
            outside_region=mean([m["outside_region"] for m in ms]),
            fields_with_region=ms[0]["fields_with_region"],
            unconverged_fields=_total([m.get("unconverged_fields") for m in ms]),
            ode=OdeMeans.of(ode) if (ode := [m for m in ms if "swap" in m]) else None,
        )
        for c, ms in sorted(groups.items(), key=lambda kv: order(kv[0]))
    ]


def _total(values: list) -> int | None:
    return None if any(v is None for v in values) else sum(values)


def summary_table(result: AnalyzeResult):
    """A rich Table of the means per configuration (a column per swept field), with n."""
    swept = list(dict.fromkeys(k for row in result.table for k, _ in row.axes.swept))
    header = ("depth", "scheme", *swept, "lr", "n", "test acc %", "response", "step ratio",
              "|z|", "outside region", "unconv.")  # fmt: skip

    def num(v, fmt=".3g"):
        return "-" if v is None else format(v, fmt)

    rows = []
    for r in result.table:
        outside = (
            "-" if r.outside_region is None else f"{r.outside_region:.1f}/{r.fields_with_region}"
        )
        acc = None if r.test_acc is None else 100 * r.test_acc
        values = dict(r.axes.swept)
        rows.append([
            str(r.axes["depth"]), str(r.axes["solver"]), *(str(values[k]) for k in swept),
            f"{r.axes['lr']:g}", str(r.n), num(acc, ".2f"), num(r.response),
            num(r.step_ratio), num(r.eig_abs), outside,
            "-" if r.unconverged_fields is None else str(r.unconverged_fields),
        ])  # fmt: skip
    cell = ", ".join(("depth", "scheme", *swept, "lr"))
    main = rich_table(
        header,
        rows,
        title=f"analyze: means over the n seeds per ({cell})",
        caption="images: " + "; ".join(result.settings["images"]) + "; unconv.: fields whose "
        f"eigenvalue estimate stayed above --eigen-tol {result.settings['eigen']['tol']:g} "
        "(summed over seeds)",
        left=("depth", "scheme", *swept),
    )
    ode = ode_table_rows(result.table)
    if not ode:
        return main

    keys = ["depth", "scheme", *swept, "lr"]
    caption = "eval mode, on " + "; ".join(sorted({m.values["test_data"] for m in result.models
                                                   if "test_data" in m.values}))  # fmt: skip
    tables = [rich_table(header, cells, title=f"{title} (mean ± std over the n seeds)",
                         caption=caption, left=keys[:-1])
              for title, header, cells in ode_tables(ode, keys)]  # fmt: skip
    return Group(main, *tables)


def ode_table_rows(table: list[ConfigurationMeans]) -> list[tuple[list[str], int, OdeMeans]]:
    """The configurations with ODE tests as ``ode_tables`` rows: (depth, scheme, swept values,
    lr cells; n; OdeMeans)."""
    swept = list(dict.fromkeys(k for row in table for k, _ in row.axes.swept))
    out = []
    for r in table:
        if r.ode is not None:
            a, values = r.axes, dict(r.axes.swept)
            cells = [str(a["depth"]), str(a["solver"]), *(str(values[k]) for k in swept),
                     f"{a['lr']:g}"]  # fmt: skip
            out.append((cells, r.n, r.ode))
    return out
