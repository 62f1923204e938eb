"""`cleanup`: remove what earlier sessions left in the external cluster."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_istio_remote.cli import options
from kubectl_istio_remote.status import ExitStatus


@options.with_cluster_flags
def command(
    everything: Annotated[bool, typer.Option("--all", help="Remove every object of ours, of every user, expired or not.")] = False,
    session: Annotated[
        str, typer.Option("--session", help="Remove the objects of this session, expired or not (a session that could not remove them names it).")
    ] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed.")] = False,
    *,
    flags: options.SessionFlags,
) -> int:
    """Remove expired objects of your earlier sessions (pods, service accounts, roles, role bindings) in the istio namespace, or one session's with --session."""
    from kubectl_istio_remote import cleanup
    from kubectl_istio_remote.session import resolve_settings

    settings = resolve_settings(flags)
    external, namespace = settings.external, settings.istio_namespace
    chosen = cleanup.select(cleanup.find(external, namespace), external.username(), everything, session)
    if dry_run:
        for leftover in chosen:
            print(f"{leftover.ref.kind}/{leftover.ref.name}\tsession={leftover.session}\tuser={leftover.user}\texpired={leftover.expired}")
        return ExitStatus.SUCCESS
    for removed in cleanup.remove(external, namespace, chosen):
        print(f"deleted {removed}")
    return ExitStatus.SUCCESS
