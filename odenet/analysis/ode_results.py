"""The ODE tests' results (odenet.analysis.ode_tests): a run's flat form (``ode_table``: a row
per swap scheme and per refinement factor), the means ± std over the seeds of one
configuration (``swap_means``, ``refine_means``: what ``ConfigurationMeans`` holds of them)
and the cells of their tables (``ode_tables``: the same rows for the terminal and the
report's Markdown)."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from odenet.tables import FlatTable

ODE_COLUMNS = ("test", "scheme", "factor", "steps", "test_acc", "test_loss", "rel_change",
               "observed_order")  # fmt: skip


def ode_table(values: dict) -> FlatTable:
    """A run's ODE tests as rows: ("swap", evaluated scheme, factor 1, its wiring, accuracy,
    loss) per scheme, then ("refine", trained scheme, m, ...) per factor with the relative
    change of the logits against m/2 and the observed order (None where undefined)."""
    trained = next((s["scheme"] for s in values["swap"] if s["trained"]), None)
    rows = [("swap", s["scheme"], 1, s["steps"], s["test_acc"], s["test_loss"], None, None)
            for s in values["swap"]]  # fmt: skip
    rows += [("refine", trained, r["factor"], None, r["test_acc"], r["test_loss"],
              r["rel_change"], r["observed_order"]) for r in values["refine"]]  # fmt: skip
    return FlatTable(ODE_COLUMNS, tuple(rows), index=("test", "scheme", "factor"))


@dataclass(frozen=True)
class MeanStd:
    """Mean and std (ddof 1; None for one value) of the values a configuration's seeds have."""

    mean: float | None  # None: no seed has a value
    std: float | None
    n: int  # values behind them

    @classmethod
    def of(cls, values: Iterable[float | None]) -> MeanStd:
        vals = [v for v in values if v is not None]
        if not vals:
            return cls(None, None, 0)
        std = statistics.stdev(vals) if len(vals) > 1 else None
        return cls(statistics.fmean(vals), std, len(vals))

    def text(self, fmt: str, scale: float = 1.0, n: int | None = None) -> str:
        """The cell: mean ± std (``fmt`` each, times ``scale``), "-" without values, and
        " (n=k)" when k differs from the row's ``n``."""
        if self.mean is None:
            return "-"
        out = format(self.mean * scale, fmt)
        if self.std is not None:
            out += " ± " + format(self.std * scale, fmt)
        return out + ("" if n is None or n == self.n else f" (n={self.n})")


@dataclass(frozen=True)
class SwapMeans:
    """One evaluated scheme of a configuration's swap test."""

    scheme: str
    trained: bool  # the scheme the configuration was trained with
    steps: str  # its wiring at this depth (e.g. "rk3 + euler": rk3 on 4 fields)
    test_acc: MeanStd
    test_loss: MeanStd


@dataclass(frozen=True)
class RefineMeans:
    """One refinement factor m of a configuration."""

    factor: int
    test_acc: MeanStd
    test_loss: MeanStd
    rel_change: MeanStd  # ||y_m - y_{m/2}|| / ||y_m||, mean over images, then over seeds
    observed_order: MeanStd  # log2 of the previous change over this one, per seed


@dataclass(frozen=True)
class OdeMeans:
    """A configuration's ODE tests: means over its seeds per evaluated scheme (in the order the
    runs list them) and per refinement factor (ascending)."""

    swap: tuple[SwapMeans, ...]
    refine: tuple[RefineMeans, ...]

    @classmethod
    def of(cls, runs: Sequence[dict]) -> OdeMeans:
        """From the runs' ``ode_tests`` results (their "swap" and "refine" lists)."""
        schemes: dict[str, list[dict]] = {}
        factors: dict[int, list[dict]] = {}
        for run in runs:
            for s in run["swap"]:
                schemes.setdefault(s["scheme"], []).append(s)
            for r in run["refine"]:
                factors.setdefault(r["factor"], []).append(r)

        def stat(entries: list[dict], key: str) -> MeanStd:
            return MeanStd.of(e[key] for e in entries)

        swap = tuple(
            SwapMeans(
                name, es[0]["trained"], es[0]["steps"], stat(es, "test_acc"), stat(es, "test_loss")
            )  # fmt: skip
            for name, es in schemes.items()
        )
        keys = ("test_acc", "test_loss", "rel_change", "observed_order")
        refine = tuple(RefineMeans(m, *(stat(factors[m], k) for k in keys))
                       for m in sorted(factors))  # fmt: skip
        return cls(swap, refine)


def ode_tables(rows: Sequence[tuple[list[str], int, OdeMeans]], keys: Sequence[str]) -> list:
    """(title, header, rows of cells) of the swap and the refinement tables: per configuration
    (its ``keys`` cells, n seeds, its OdeMeans) a row of mean ± std cells. Swap: test accuracy
    % under each evaluated scheme (the trained one marked *). Refine: test accuracy % at each
    m, the relative change of the logits against m/2 and the observed order."""
    schemes = list(dict.fromkeys(s.scheme for _, _, o in rows for s in o.swap))
    factors = sorted({r.factor for _, _, o in rows for r in o.refine})
    swap_rows, refine_rows = [], []
    for cells, n, o in rows:
        by_scheme = {s.scheme: s for s in o.swap}
        swap_rows.append([*cells, str(n), *(
            "-" if (s := by_scheme.get(name)) is None
            else s.test_acc.text(".1f", 100, n) + ("*" if s.trained else "")
            for name in schemes)])  # fmt: skip
        by_m = {r.factor: r for r in o.refine}
        refine_rows.append([*cells, str(n),
            *(_cell(by_m, m, "test_acc", ".1f", 100, n) for m in factors),
            *(_cell(by_m, m, "rel_change", ".2g", 1, n) for m in factors[1:]),
            *(_cell(by_m, m, "observed_order", ".2f", 1, n) for m in factors[2:])])  # fmt: skip
    swap_header = [*keys, "n", *(f"acc % {name}" for name in schemes)]
    refine_header = [*keys, "n", *(f"acc % m={m}" for m in factors),
                     *(f"change m={m}" for m in factors[1:]),
                     *(f"order m={m}" for m in factors[2:])]  # fmt: skip
    return [
        ("integrator swap: test accuracy % of the trained fields under each scheme "
         "(* the trained scheme)", swap_header, swap_rows),
        ("depth refinement: each step taken m times at h/m; change: ||y_m - y_m/2|| / ||y_m|| "
         "of the logits (mean over images); order: log2 of successive changes",
         refine_header, refine_rows),
    ]  # fmt: skip


def _cell(by_m: dict[int, RefineMeans], m: int, key: str, fmt: str, scale: float, n: int) -> str:
    return "-" if m not in by_m else getattr(by_m[m], key).text(fmt, scale, n)
