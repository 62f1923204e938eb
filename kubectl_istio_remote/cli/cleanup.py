"""`cleanup`: remove what earlier sessions left in the external cluster."""

from __future__ import annotations

import click

from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.session.settings import Mode
from kubectl_istio_remote.status import ExitStatus


@options.takes(options.CONNECTION, options.TARGET, options.VERBOSE)
@click.command(
    params=[
        options.flag("--all", "everything", help="Remove every object of ours, of every user, expired or not.", default=False),
        options.flag(
            "--session",
            help="Remove the objects of this session, expired or not (a session that could not remove them names it).",
            default="",
            show_default=False,
        ),
        options.flag("--dry-run", help="List what would be removed.", default=False),
    ]
)
@click.pass_context
def command(ctx: click.Context, everything: bool, session: str, dry_run: bool) -> int:
    """Remove expired objects of your earlier sessions (pods, service accounts, roles, role bindings) in the istio namespace, or one session's with --session."""
    from kubectl_istio_remote.session import leftovers

    settings = invocation.session_settings(ctx, mode=Mode.pod)
    console = invocation.console(ctx)
    external, namespace = settings.external, settings.istio_namespace
    chosen = leftovers.select(leftovers.find(external, namespace), external.username(), everything, session)
    if dry_run:
        console.data("".join(f"{left.ref}\tsession={left.session}\tuser={left.user}\texpired={left.expired}\n" for left in chosen))
        return ExitStatus.SUCCESS
    console.data("".join(f"deleted {removed}\n" for removed in leftovers.remove(external, namespace, chosen, console)))
    return ExitStatus.SUCCESS
