"""`shell`: a shell (or one command) in which istioctl reaches every istiod replica."""

from __future__ import annotations

import os

import click

from kubectl_istio_remote.cli import invocation, options

PROMPT_MARKER = "(istio-remote) "


@options.takes(*options.SESSION)
@click.command(params=[options.flag("--shell", help="Shell to start (default: $SHELL).")])
@click.pass_context
def command(ctx: click.Context, shell: str | None) -> int:
    """Start $SHELL with ISTIOCTL_* set to the session; `-- CMD ARGS` runs one command instead. Ends with the session."""
    from kubectl_istio_remote import istioctl as istioctl_adapter
    from kubectl_istio_remote.process import run_foreground
    from kubectl_istio_remote.session.lifecycle import open_session
    from kubectl_istio_remote.signals import signals_interrupt

    lookup = istioctl_adapter.find_soon(None)
    settings = invocation.session_settings(ctx, earlier_errors=lookup)
    console = invocation.console(ctx)
    passthrough = invocation.current(ctx).passthrough
    argv = passthrough or [shell or os.environ.get("SHELL") or "/bin/sh"]
    # The shell is there to run istioctl: the rights the installed one needs are checked up front.
    with signals_interrupt(), open_session(settings, console, istioctl=lookup()) as connection:
        env = istioctl_adapter.environment(connection.address, settings.istio_namespace)
        env["ISTIO_REMOTE_CONTEXT"] = settings.mesh.context
        env["PS1"] = PROMPT_MARKER + env.get("PS1", r"\w \$ ")
        if not passthrough:
            where = settings.shared.address if settings.shared else f"{settings.istio_namespace} in {settings.external.context}"
            console.progress(
                f"istioctl now reaches every istiod of {where}; "
                f"use `--context {settings.mesh.context}` with istioctl if your current context differs; exit to end"
            )
        return run_foreground(argv, env)
