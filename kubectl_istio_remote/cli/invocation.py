"""What one run of the CLI hands its commands through the click context: the console, and the words after `--`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UserError

if TYPE_CHECKING:
    from kubectl_istio_remote.session.settings import SessionSettings


@dataclass
class Invocation:
    console: Console = field(default_factory=Console)
    #: What followed the first `--`: istioctl's flags, or the command `shell` runs.
    passthrough: list[str] = field(default_factory=list)


def split_passthrough(args: list[str]) -> tuple[list[str], list[str]]:
    """(our arguments, the program's arguments): what follows the first `--` is not ours to parse."""
    if "--" not in args:
        return args, []
    index = args.index("--")
    return args[:index], args[index + 1 :]


def current(ctx: click.Context) -> Invocation:
    invocation = ctx.find_root().obj
    if not isinstance(invocation, Invocation):
        ctx.find_root().obj = invocation = Invocation()
    return invocation


def console(ctx: click.Context, verbose: bool = False) -> Console:
    """The run's console, at the verbosity the command was given."""
    chosen = current(ctx).console
    chosen.set_verbose(verbose)
    return chosen


def session_settings(ctx: click.Context, earlier_errors: Callable[[], object] = lambda: None) -> SessionSettings:
    """The session flags among the command's parameters, resolved against the clusters (contexts pinned, namespace found).

    `earlier_errors` is work started before (looking for istioctl): if resolving fails, its own error is raised first.
    """
    from kubectl_istio_remote.session.settings import SessionFlags, resolve_settings

    flags = SessionFlags.from_params(ctx.params)
    try:
        return resolve_settings(flags, console(ctx, flags.verbose))
    except UserError:
        earlier_errors()
        raise
