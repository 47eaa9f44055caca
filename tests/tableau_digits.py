"""Every module-level Butcher tableau of odenet.solvers, re-evaluated at 50 digits.

The tableaux are written as expressions (1 / 3, (7 + _R) / 14 with _R = math.sqrt(21.0));
Python evaluates them in float64. Here the same source expressions are evaluated with
``decimal`` at 50 significant digits (every literal becomes a Decimal, every sqrt a Decimal
sqrt), which gives the exact numbers the floats stand for, independently of the float code.
"""

import ast
import decimal
import inspect
from decimal import Decimal

from odenet.solvers import tableau, tableau_high
from odenet.solvers.tableau import ButcherTableau

CONTEXT = decimal.Context(prec=50)


class _Digits(ast.NodeTransformer):
    """Literals -> D('literal'); math.sqrt(x) -> D(x).sqrt()."""

    def visit_Constant(self, node):
        if isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            call = ast.Call(ast.Name("D", ast.Load()), [ast.Constant(repr(node.value))], [])
            return ast.copy_location(call, node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if ast.unparse(node.func) == "math.sqrt":
            sqrt = ast.Attribute(node.args[0], "sqrt", ast.Load())
            return ast.copy_location(ast.Call(sqrt, [], []), node)
        return node


def _module_tableaux(module) -> dict[str, dict]:
    names = {"D": lambda s: CONTEXT.create_decimal(Decimal(s)), "ButcherTableau": dict}
    out = {}
    with decimal.localcontext(CONTEXT):
        for node in ast.parse(inspect.getsource(module)).body:
            if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)):
                continue
            name = node.targets[0].id
            value = getattr(module, name, None)
            if not isinstance(value, (ButcherTableau, float)):
                continue
            expr = ast.fix_missing_locations(ast.Expression(_Digits().visit(node.value)))
            names[name] = eval(compile(expr, module.__name__, "eval"), names)  # noqa: S307
            if isinstance(value, ButcherTableau):
                out[name] = names[name]
    return out


def digits_of(tab: ButcherTableau) -> dict:
    """{"c": ..., "a": ..., "b": ...} of the module constant equal to ``tab``, at 50 digits."""
    for module in (tableau, tableau_high):
        for name, exact in _module_tableaux(module).items():
            if getattr(module, name) == tab:
                return exact
    raise LookupError(f"no module-level tableau equals {tab}")
