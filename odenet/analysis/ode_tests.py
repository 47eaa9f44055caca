"""Is the trained network an ODE? The two tests of issue 21 on a trained stacked network.

* **Integrator swap** (Queiruga et al. 2020): the trained fields wired by another stacked
  scheme (``odenet.nets.rewire``), evaluated without retraining. A network that learned a
  smooth vector field keeps its accuracy under another integrator; one that learned a discrete
  map loses it.
* **Depth refinement** (Sander et al. 2022): every step taken m times at h/m through the same
  fields (``odenet.nets.refine``). If the network discretises an ODE, its logits y_m converge
  as m grows, at the scheme's order p: the change ``||y_m - y_{m/2}|| / ||y_m||`` (per image,
  then the mean over the images) falls like m^-p, so ``log2`` of the ratio of successive
  changes (the observed order) approaches p.

Both are measured in eval mode (the variants share the trained BatchNorm buffers) on a fixed
list of batches, normally the run's own test subset (odenet.analysis.inputs.run_test_subset):
test accuracy and mean cross-entropy, summed in float64 as training evaluates them. The
trained scheme's own entry and m = 1 are the trained network (rewiring to the trained scheme
and refining with m = 1 give its outputs bitwise), evaluated once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet import solvers as registry
from odenet.analysis.inputs import DataCache
from odenet.analysis.ode_results import ode_table
from odenet.errors import ConfigError
from odenet.nets import ResNet, Stage, refine, rewire
from odenet.solvers import StackedSolver
from odenet.strict_json import finite
from odenet.studies.spec import parse_list
from odenet.studies.store import RunRecord, Store

Batch = tuple[Tensor, Tensor]

DEFAULT_SCHEMES = ("euler", "heun", "rk3", "rk4")  # the Runge-Kutta schemes of order 1..4
DEFAULT_FACTORS = (1, 2, 4, 8)
VERSION = 1  # bump when what a cached result holds changes


@dataclass(frozen=True)
class OdeTestConfig:
    """Which schemes the swap evaluates and which refinement factors m."""

    schemes: tuple[str, ...] = DEFAULT_SCHEMES  # stacked, fixed schemes; the trained one added
    factors: tuple[int, ...] = DEFAULT_FACTORS  # powers of two, each twice the one before

    def validate(self) -> None:
        """ConfigError (one line, naming the option) for a scheme that cannot be swapped to
        or factors that are not successive powers of two."""
        for name in self.schemes:
            swap_scheme(name)
        check_factors(self.factors)

    @classmethod
    def from_options(
        cls, enabled: bool, schemes: str | None, factors: str | None
    ) -> OdeTestConfig | None:
        """``--ode-tests`` with ``--swap-schemes`` / ``--refine-factors`` (None: not given):
        the parsed config, None when not enabled; ConfigError for either option without it."""
        if not enabled:
            if (schemes, factors) != (None, None):
                given = "--swap-schemes" if schemes is not None else "--refine-factors"
                raise ConfigError(f"{given} sets up the ODE tests: add --ode-tests")
            return None
        return cls.parse(schemes, factors)

    @classmethod
    def parse(cls, schemes: str | None, factors: str | None) -> OdeTestConfig:
        """From the options' strings ("euler,heun", "1,2,4,8"; None: the default), validated;
        schemes by their registry names."""
        names = DEFAULT_SCHEMES if schemes is None else parse_list(schemes, str, "swap-schemes")
        ms = DEFAULT_FACTORS if factors is None else parse_list(factors, int, "refine-factors")
        check_factors(ms)
        return cls(tuple(dict.fromkeys(swap_scheme(s) for s in names)), ms)


def swap_scheme(name: str) -> str:
    """The registry name of a scheme any residual stacked network can be rewired to, or
    ConfigError: continuous (ode-*) schemes do not stack distinct fields, plain has no
    identity path, and lm and learn-* would bring new, untrained coefficients."""
    solver = registry.get(name)
    if not isinstance(solver, StackedSolver):
        raise ConfigError(
            f"--swap-schemes: {solver.name} does not stack distinct fields (continuous mode "
            "integrates one shared field); choose stacked schemes, e.g. euler,heun,rk3,rk4"
        )
    if not solver.residual:
        raise ConfigError(
            f"--swap-schemes: {solver.name} has no identity path (x <- F(x)), so it shares no "
            "shortcuts with a trained residual network; choose e.g. euler,heun,rk3,rk4"
        )
    # a throwaway generator: asking must not draw from the global random state
    if solver.make_coefficients(4, torch.Generator()) is not None:
        raise ConfigError(
            f"--swap-schemes: {solver.name} learns its coefficients in training, so swapping "
            "to it would evaluate untrained ones (a model trained as it is evaluated under it "
            "anyway); choose fixed schemes, e.g. euler,heun,rk3,rk4"
        )
    return solver.name


def check_factors(factors: Sequence[int]) -> None:
    """ConfigError unless ``factors`` are powers of two, each twice the one before (the change
    at m is measured against m/2)."""
    if not factors:
        raise ConfigError("--refine-factors: give at least one factor, e.g. 1,2,4,8")
    for m in factors:
        if isinstance(m, bool) or not isinstance(m, int) or m < 1 or m & (m - 1):
            raise ConfigError(f"--refine-factors: {m!r} is not a power of two (1, 2, 4, 8, ...)")
    for a, b in zip(factors, factors[1:]):
        if b != 2 * a:
            shown = ",".join(map(str, factors))
            raise ConfigError(
                f"--refine-factors: each factor must be twice the one before (the change at m "
                f"is measured against m/2), e.g. 1,2,4,8; got {shown}"
            )


@dataclass(frozen=True)
class Evaluation:
    """A network's outputs on the batches."""

    logits: Tensor  # float32 (N, classes), in batch order
    loss: float  # mean cross-entropy
    acc: float  # fraction correct


@torch.no_grad()
def evaluate(model: nn.Module, batches: list[Batch]) -> Evaluation:
    """Eval-mode logits, mean cross-entropy (float64 sums) and accuracy over ``batches``."""
    model.eval()
    logits, loss_sum, correct, seen = [], 0.0, 0, 0
    for x, y in batches:
        out = model(x).float()
        loss_sum += float(F.cross_entropy(out, y, reduction="sum").double())
        correct += int((out.argmax(1) == y).sum())
        seen += y.numel()
        logits.append(out)
    return Evaluation(torch.cat(logits), loss_sum / max(seen, 1), correct / max(seen, 1))


def relative_change(y: Tensor, y_half: Tensor) -> float:
    """``||y - y_half|| / ||y||`` per image (rows of (N, classes) logits), mean over the
    images, in float64."""
    y, y_half = y.double(), y_half.double()
    return float(((y - y_half).norm(dim=1) / y.norm(dim=1)).mean())


def observed_order(change_half: float | None, change: float | None) -> float | None:
    """``log2(c_{m/2} / c_m)``: the order p for which the changes fall like m^-p; None where
    either change is missing, zero or not finite."""
    if change_half is None or change is None:
        return None
    if not (change_half > 0 and change > 0 and math.isfinite(change_half / change)):
        return None
    return math.log2(change_half / change)


def wiring(model: ResNet) -> str:
    """The steps each stage takes, e.g. "rk3 + euler" (rk3 on 4 fields) or "2x heun"; stages
    that differ are listed one by one."""

    def steps(stage: Stage) -> str:
        runs: list[list] = []
        for plan in stage.plan():
            if runs and runs[-1][0] == plan.scheme:
                runs[-1][1] += 1
            else:
                runs.append([plan.scheme, 1])
        return " + ".join(name if n == 1 else f"{n}x {name}" for name, n in runs)

    each = [steps(s) for s in model.stages]
    if len(set(each)) == 1:
        return each[0]
    return "; ".join(f"stage {i + 1}: {s}" for i, s in enumerate(each))


def ode_tests(model: ResNet, batches: list[Batch], config: OdeTestConfig = OdeTestConfig()) -> dict:
    """The swap and refinement tests of one trained stacked ResNet on ``batches``.

    Returns {"swap": [{"scheme", "trained" (the scheme it was trained with), "steps" (the
    wiring, ``wiring``), "test_acc", "test_loss"}] in ``config.schemes`` order with the
    trained scheme appended when missing; "refine": [{"factor", "test_acc", "test_loss",
    "rel_change" (against factor/2; None for the first), "observed_order" (log2 of the
    previous change over this one; None where undefined)}]; "refused": what the network
    cannot be rewired to or refined by (ConfigError's line, e.g. a plain or a two-step
    network), each left out of the lists}. ``model`` is put in eval mode and not changed.
    """
    trained_name = registry.get(model.config.solver).name
    trained = evaluate(model, batches)
    names = [registry.get(s).name for s in config.schemes]
    swap: list[dict] = []
    refused: dict[str, list[str]] = {}  # the reason -> what it refuses
    for name in list(dict.fromkeys(names)) + ([] if trained_name in names else [trained_name]):
        try:
            net = rewire(model, name)
        except ConfigError as err:
            refused.setdefault(str(err), []).append(f"swap to {name}")
            continue
        out = trained if name == trained_name else evaluate(net, batches)
        swap.append({"scheme": name, "trained": name == trained_name, "steps": wiring(net),
                     "test_acc": out.acc, "test_loss": out.loss})  # fmt: skip
    refined: list[dict] = []
    previous: Evaluation | None = None
    for m in config.factors:
        try:
            net = refine(model, m)  # refused before anything is evaluated
            out = trained if m == 1 else evaluate(net, batches)
        except ConfigError as err:
            refused.setdefault(str(err), []).append(f"refine by {m}")
            break  # a larger m is refused for the same reason
        change = None if previous is None else relative_change(out.logits, previous.logits)
        order = observed_order(refined[-1]["rel_change"], change) if refined else None
        refined.append({"factor": m, "test_acc": out.acc, "test_loss": out.loss,
                        "rel_change": change, "observed_order": order})  # fmt: skip
        previous = out
    model.eval()
    lines = [f"{', '.join(what)}: {reason}" for reason, what in refused.items()]
    return {"swap": swap, "refine": refined, "refused": lines}


def measure_run(
    store: Store, run: RunRecord, model: ResNet, checkpoint: str, data: DataCache,
    config: OdeTestConfig,
) -> tuple[dict, bool]:  # fmt: skip
    """(``ode_tests`` of a run's trained model on its own test subset, with "test_data" (which
    images), whether it was found in the store): cached in the study database (kind
    "ode_tests") under every setting that determines it, with its flat form (``ode_table``)."""
    subset, batches = data.test_batches(run)
    key = {
        "version": VERSION,
        "run_id": run.id,
        "checkpoint": checkpoint,
        "data": subset.key,
        "batch_size": data.batch_size,
        "schemes": list(config.schemes),
        "factors": list(config.factors),
    }
    stored = store.analysis(run.id, "ode_tests", key)
    if stored is not None:
        return stored, True
    result = finite({**ode_tests(model, batches, config), "test_data": subset.description})
    store.record_analysis(run.id, "ode_tests", key, result, table=ode_table(result))
    return result, False
