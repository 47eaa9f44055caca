"""The solver registry: a thin, case-insensitive name -> solver layer with loud errors."""

from __future__ import annotations

from odenet.errors import ConfigError
from odenet.solvers.base import Solver
from odenet.solvers.continuous import ContinuousSolver
from odenet.solvers.learned import LearnedRungeKutta
from odenet.solvers.multistep import LMResNet, TwoStep
from odenet.solvers.plain import Plain
from odenet.solvers.runge_kutta import DEFAULT_METHODS, RungeKutta
from odenet.solvers.tableau import (
    EULER,
    GILL,
    HEUN,
    HEUN3,
    MIDPOINT,
    RALSTON,
    RK3,
    RK4,
    RK38,
)
from odenet.solvers.tableau_high import BUTCHER5, BUTCHER6, COOPER_VERNER8, HUTA6, NYSTROM5

_SOLVERS: dict[str, Solver] = {}
_ALIASES: dict[str, str] = {}


def register(solver: Solver, *aliases: str) -> Solver:
    """Add a solver (and optional alias names). A name already taken raises ValueError."""
    for key in (solver.name, *aliases):
        k = key.lower()
        if k in _SOLVERS or k in _ALIASES:
            raise ConfigError(f"solver name {key!r} is already registered")
    _SOLVERS[solver.name.lower()] = solver
    for alias in aliases:
        _ALIASES[alias.lower()] = solver.name.lower()
    return solver


def available() -> list[str]:
    """Registered solver names in registration order (aliases not included)."""
    return list(_SOLVERS)


def aliases() -> dict[str, str]:
    """alias -> canonical name."""
    return dict(_ALIASES)


def get(name: str | Solver) -> Solver:
    """The solver registered under ``name`` (case-insensitive); a Solver passes through."""
    if isinstance(name, Solver):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return _SOLVERS[key]
    except KeyError:
        valid = ", ".join(available() + sorted(_ALIASES))
        raise ConfigError(f"unknown solver {name!r}; expected one of: {valid}") from None


# order -> the default method of that order (also the methods that take leftover fields)
ORDER_TO_SOLVER: dict[int, str] = {order: name for order, (name, _) in DEFAULT_METHODS.items()}


def for_order(order: int) -> str:
    """The default solver name of a given order (1 euler, 2 heun, 3 rk3, 4 rk4, 5 nystrom5,
    6 huta6, 8 cv8: HO-ResNet's choices where it has one)."""
    try:
        return ORDER_TO_SOLVER[int(order)]
    except (KeyError, ValueError, TypeError):
        valid = ", ".join(str(k) for k in ORDER_TO_SOLVER)
        raise ConfigError(f"unknown order {order!r}; expected one of: {valid}") from None


_RK = [
    ("euler", EULER, 1, "Forward Euler: the standard ResNet block x + F(x)"),
    ("midpoint", MIDPOINT, 2, "Explicit midpoint: x + F2(x + F1(x)/2)"),
    ("heun", HEUN, 2, "Heun / improved Euler: x + (k1 + k2)/2, k2 = F2(x + k1)"),
    ("ralston", RALSTON, 2, "Ralston's 2nd order: minimal truncation-error constant"),
    ("rk3", RK3, 3, "Kutta's third-order method"),
    ("heun3", HEUN3, 3, "Heun's third-order method"),
    ("rk4", RK4, 4, "Classic Runge-Kutta, 4th order"),
    ("rk38", RK38, 4, "Kutta's 3/8 rule, 4th order (torchdiffeq's 'rk4')"),
    ("gill", GILL, 4, "Gill's 4th-order method"),
    ("nystrom5", NYSTROM5, 5, "Kutta-Nystrom 5th order, 6 stages (HO-ResNet's order 5)"),
    ("butcher5", BUTCHER5, 5, "Butcher's 5th order, 6 stages"),
    ("butcher6", BUTCHER6, 6, "Butcher's 6th order, 7 stages (the fewest for order 6)"),
    ("huta6", HUTA6, 6, "Huta's 6th order, 8 stages (HO-ResNet's order 6)"),
    ("cv8", COOPER_VERNER8, 8, "Cooper-Verner 8th order, 11 stages (sqrt(21) tableau)"),
]
for _name, _tab, _order, _desc in _RK:
    register(RungeKutta(_name, _tab, _order, _desc), *(("rk2",) if _name == "heun" else ()))

register(LMResNet())
register(TwoStep("ab2", 1.0, 0.0, 1.5, -0.5, 2, "Adams-Bashforth 2: u + 3/2 F(u) - 1/2 F(u-)"))
register(TwoStep("leapfrog", 0.0, 1.0, 2.0, 0.0, 2, "Leapfrog (explicit midpoint two-step)"))
register(Plain())
# learn-<tableau>: every Runge-Kutta method above with A and b learned per step
for _name, *_ in _RK:
    _base = get(_name)
    assert isinstance(_base, RungeKutta)
    register(LearnedRungeKutta(_base))

_ODE = [
    ("euler", 1, 1, False, "Forward Euler"),
    ("midpoint", 2, 2, False, "Explicit midpoint"),
    ("rk4", 4, 4, False, "Kutta's 3/8 rule (torchdiffeq's rk4)"),
    ("bosh3", 3, 3, True, "Bogacki-Shampine 3(2), adaptive"),
    ("dopri5", 5, 6, True, "Dormand-Prince 5(4), adaptive"),
]
for _m, _order, _stages, _adaptive, _desc in _ODE:
    register(
        ContinuousSolver(
            f"ode-{_m}",
            _m,
            _order,
            _stages,
            _adaptive,
            f"Continuous: one shared field, torchdiffeq {_m} ({_desc})",
        )
    )
