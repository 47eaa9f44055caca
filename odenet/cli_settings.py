"""Command-line options generated from config fields: one option per Setting (its flat name
as the flag, ``--depth``, ``--weight-decay``; ``--x/--no-x`` for a bool), typed, defaulted
and explained by the field itself (``odenet.training.config.SETTINGS``). A field added to
TrainConfig or ModelConfig is an option of ``train``, ``describe`` and ``study`` at once.

Typer reads a command's options from ``inspect.signature``; ``with_settings`` gives a command
a synthesized signature (its own parameters, then one per setting) and hands it the
settings' values as one dict.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Iterable

import typer

from odenet.training.config import Setting

PANELS = {True: "Model", False: "Training"}  # rich help panels, by Setting.in_model


def with_settings(settings: Iterable[Setting], *, given: bool = False) -> Callable:
    """Decorator: ``fn(values, **own)`` -> a Typer command with ``fn``'s own options plus one
    per setting; ``values`` maps each setting's name to its option's value.

    given=False: each option defaults to the field's default. given=True (``study``): each
    defaults to None, "not given", and its help shows the field's default.
    """
    settings = list(settings)

    def wrap(fn: Callable) -> Callable:
        hints = typing.get_type_hints(fn)
        own = [
            p.replace(annotation=hints.get(p.name, p.annotation))
            for p in list(inspect.signature(fn).parameters.values())[1:]
        ]
        names = [s.name for s in settings]

        @functools.wraps(fn)
        def command(**kwargs: object) -> None:
            values = {name: kwargs.pop(name) for name in names}
            return fn(values, **kwargs)

        params = own + [_parameter(s, given) for s in settings]
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return wrap


def _parameter(s: Setting, given: bool) -> inspect.Parameter:
    flag = "--" + s.name.replace("_", "-")
    decls = [f"{flag}/--no-{flag[2:]}"] if s.kind is bool else [flag]
    text = s.help
    if given and s.default is not None:  # None: not given; the help says what is used then
        text += f" (default {s.default})"
    option = typer.Option(
        None if given else s.default,
        *decls,
        help=text,
        show_default=not given,
        rich_help_panel=PANELS[s.in_model],
    )
    annotation = (s.kind | None) if s.optional or given else s.kind
    return inspect.Parameter(
        s.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
    )
