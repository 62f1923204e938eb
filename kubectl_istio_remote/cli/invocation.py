"""What one run of the CLI hands its commands through the click context: the console, and the words after `--`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import click

from kubectl_istio_remote.console import Console
from kubectl_istio_remote.errors import UnavailableError, UserError

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection
    from kubectl_istio_remote.native.syncz import Syncz
    from kubectl_istio_remote.session.settings import Mode, SessionFlags, SessionSettings

T = TypeVar("T")


@dataclass
class Invocation:
    console: Console = field(default_factory=Console)
    #: What followed the first `--`: istioctl's flags, or the command `shell` runs.
    passthrough: list[str] = field(default_factory=list)


class Commands(click.Group):
    """Commands listed in the order they are registered (the most used first), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


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


def console(ctx: click.Context) -> Console:
    """The run's console, at the verbosity the command was given (-v, where it takes that flag)."""
    chosen = current(ctx).console
    chosen.set_verbose(bool(ctx.params.get("verbose")))
    return chosen


def flags(ctx: click.Context) -> SessionFlags:
    """The flag groups' values the command was given (options.takes), as the session reads them."""
    from kubectl_istio_remote.session.settings import SessionFlags

    return SessionFlags.from_params(ctx.params)


def session_settings(
    ctx: click.Context, earlier_errors: Callable[[], object] = lambda: None, *, mode: Mode | None = None, native: bool = False
) -> SessionSettings:
    """The flag groups' values resolved against the clusters (contexts pinned, mode and namespace settled).

    `earlier_errors` is work started before (looking for istioctl): if resolving fails, its own error is raised first.
    `mode` is the mode of a command without --mode (cleanup works on pod mode's objects, whatever is advertised).
    `native`: the session is for our own call (not istioctl's), which may start on the remembered shared aggregator.
    """
    import dataclasses

    from kubectl_istio_remote.session.choice import resolve_settings

    given = flags(ctx) if mode is None else dataclasses.replace(flags(ctx), mode=mode)
    try:
        return resolve_settings(given, console(ctx), warm=native)
    except UserError:
        earlier_errors()
        raise


def native_syncz(ctx: click.Context, settings: SessionSettings, proxy: str | None) -> Syncz:
    """Every proxy's sync status (or one proxy's) through a session: proxy-status and version's data."""
    from kubectl_istio_remote.aggregator.queries import fetch

    return through_session(
        ctx, settings, lambda connection, token: fetch(connection, token, settings.istio_namespace, proxy, settings.timeout)
    )


def through_session(ctx: click.Context, settings: SessionSettings, ask: Callable[[Connection, str], T]) -> T:
    """A session, a token as istioctl gets one (asked while the session opens), and `ask(connection, token)`: the native commands.

    Their answers name each failed replica themselves, so local mode's in-process aggregator does not say it again.
    """
    from kubectl_istio_remote.console import AGGREGATOR_LOGGER
    from kubectl_istio_remote.session.lifecycle import open_session
    from kubectl_istio_remote.session.token import istioctl_token_soon
    from kubectl_istio_remote.signals import signals_interrupt

    chosen = current(ctx).console
    chosen.quiet_logger(AGGREGATOR_LOGGER)
    with signals_interrupt():
        warm = settings.warm_start
        token = warm.token if warm is not None else istioctl_token_soon(settings.mesh, settings.istio_namespace)
        with open_session(settings, chosen, istioctl=None) as connection:
            try:
                return ask(connection, token())
            except UnavailableError:
                if settings.shared is not None:  # the call was the shared aggregator's health check: say why it failed
                    from kubectl_istio_remote.session.shared_mode import explain_failure

                    explain_failure(settings.shared, settings.timeout)
                raise


def report_failed(ctx: click.Context, settings: SessionSettings, failed: list[str]) -> int:
    """Name each replica that did not answer; the exit status of an answer that lacks them.

    A session's partial answer exits 0, its warnings said (the user's own session, retried at will). A shared
    aggregator's is an error: the operator's install is broken, and scripts of users who cannot see it must notice.
    """
    from kubectl_istio_remote.status import ExitStatus

    chosen = current(ctx).console
    for failure in failed:
        chosen.warning(f"istiod {failure}")
    if not failed or settings.shared is None:
        return ExitStatus.SUCCESS
    names = ", ".join(failure.split(":")[0] for failure in failed)
    chosen.error(
        f"the shared aggregator at {settings.shared.address} could not reach istiod {names}: the answer lacks their proxies; "
        "tell the mesh operator (`kubectl istio-remote doctor` names the replicas)"
    )
    return ExitStatus.UNAVAILABLE
