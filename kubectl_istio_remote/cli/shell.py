"""`shell`: a shell (or one command) in which istioctl reaches every istiod replica."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from kubectl_istio_remote.cli import options

PROMPT_MARKER = "(istio-remote) "


@options.with_session_flags
def command(
    shell: Annotated[Optional[str], typer.Option("--shell", help="Shell to start (default: $SHELL).")] = None,
    *,
    flags: options.SessionFlags,
) -> int:
    """Start $SHELL with ISTIOCTL_* set to the session; `-- CMD ARGS` runs one command instead. Ends with the session."""
    from kubectl_istio_remote import istioctl as istioctl_adapter
    from kubectl_istio_remote.cleanup import warn_about_leftovers
    from kubectl_istio_remote.process import run_foreground
    from kubectl_istio_remote.session import open_session, progress, resolve_settings
    from kubectl_istio_remote.signals import signals_interrupt

    settings = resolve_settings(flags)
    argv = options.passthrough_args() or [shell or os.environ.get("SHELL") or "/bin/sh"]
    with signals_interrupt():
        warn_about_leftovers(settings.external, settings.istio_namespace)
        # The shell is there to run istioctl: the rights the installed one needs are checked up front.
        with open_session(settings, flags.mode.value, istioctl=istioctl_adapter.find(None)) as address:
            env = istioctl_adapter.environment(address, settings.istio_namespace)
            env["ISTIO_REMOTE_CONTEXT"] = settings.mesh.context
            env["PS1"] = PROMPT_MARKER + env.get("PS1", r"\w \$ ")
            if not options.passthrough_args():
                progress(
                    f"istioctl now reaches every istiod of {settings.istio_namespace} in {settings.external.context}; "
                    "use `--context " + settings.mesh.context + "` with istioctl if your current context differs; exit to end"
                )
            return run_foreground(argv, env)
