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
from typer.core import TyperGroup

from odenet.errors import ConfigError
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


class OnceGroup(TyperGroup):
    """The app's command group: an option of one value given twice (``--width 4 --width 8``,
    ``--augment --no-augment``) is refused, never resolved silently by the last one winning.
    Repeatable options (``--set``, ``--axis``, ``--where``) and a flag repeated as it is stay
    allowed."""

    def resolve_command(self, ctx, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            check_given_once(command, rest)
        return name, command, rest


def check_given_once(command, args: list[str]) -> None:
    """ConfigError naming the first option of ``command`` (a click command; options that are
    not ``multiple``) that ``args`` give twice: two values, or a flag in both its forms."""
    options = {  # (typer ships its own click: its classes are not click's)
        flag: p
        for p in command.params
        if p.param_type_name == "option" and not p.multiple
        for flag in (*p.opts, *p.secondary_opts)
    }
    given: dict[str, list[str]] = {}  # option -> how each time gave it ("--width 4")
    for i, token in enumerate(args):
        if token == "--":  # the rest are arguments
            break
        flag = token.split("=", 1)[0]
        if flag in options:
            p = options[flag]
            takes_value = not p.is_flag and "=" not in token and i + 1 < len(args)
            given.setdefault(p.name, []).append(f"{token} {args[i + 1]}" if takes_value else token)
    for name, uses in given.items():
        p = next(q for q in command.params if q.name == name)
        if len(uses) > 1 and not (p.is_flag and len(set(uses)) == 1):
            raise ConfigError(
                f"{p.opts[0]} is given twice ({' and '.join(uses[:2])}); give it once"
            )
