"""`proxy-status`: the sync status of every proxy of every istiod replica, through istioctl or natively."""

from __future__ import annotations

import enum
import logging
import sys
from typing import Annotated, Optional

import typer

from kubectl_istio_remote.cli import options
from kubectl_istio_remote.completion import complete_mesh_namespace
from kubectl_istio_remote.status import ExitStatus

#: istioctl honours -o json|yaml for proxy-status from 1.30.
ISTIOCTL_STRUCTURED_OUTPUT = (1, 30)


class Output(str, enum.Enum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"


@options.with_session_flags
def command(
    pod: Annotated[Optional[str], typer.Argument(help="One proxy: POD or POD.NAMESPACE.")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, wide (one column per xDS type), json or yaml.")] = Output.table,
    namespace: Annotated[
        Optional[str], typer.Option("--namespace", "-n", help="Namespace of POD, or of the proxies listed.", shell_complete=complete_mesh_namespace)
    ] = None,
    native: Annotated[bool, typer.Option("--native", help="Print the answer ourselves instead of running istioctl.")] = False,
    istioctl_path: Annotated[Optional[str], typer.Option("--istioctl", help="istioctl to run (default: from PATH).")] = None,
    *,
    flags: options.SessionFlags,
) -> int:
    """Show the sync status of every proxy in the mesh, from every istiod replica. Arguments after -- go to istioctl."""
    from kubectl_istio_remote import istioctl as istioctl_adapter
    from kubectl_istio_remote import native as native_query
    from kubectl_istio_remote import render
    from kubectl_istio_remote.cleanup import warn_about_leftovers
    from kubectl_istio_remote.process import run_foreground
    from kubectl_istio_remote.session import open_session, progress, resolve_settings
    from kubectl_istio_remote.signals import signals_interrupt

    istioctl = None if native else istioctl_adapter.find(istioctl_path)
    settings = resolve_settings(flags)
    if not native and istioctl is None:
        progress("istioctl is not on PATH: printing the answer natively (--native)")
    elif istioctl is not None and output in (Output.json, Output.yaml) and istioctl.release < ISTIOCTL_STRUCTURED_OUTPUT:
        progress(f"istioctl {istioctl.version} has no -o {output.value} for proxy-status: printing it natively")
        istioctl = None
    if istioctl is None and not flags.verbose:
        # The native answer names each failed replica itself; local mode's in-process aggregator would say it twice.
        logging.getLogger("kubectl_istio_remote.aggregator").setLevel(logging.ERROR)
    with signals_interrupt():
        warn_about_leftovers(settings.external, settings.istio_namespace)
        with open_session(settings, flags.mode.value, istioctl=istioctl) as address:
            if istioctl is not None:
                argv = [
                    istioctl.path,
                    *istioctl_adapter.cluster_flags(settings.mesh.kubeconfig, settings.mesh.context),
                    *istioctl.proxy_status_command(),
                    *([pod] if pod else []),
                    *(["-n", namespace] if namespace else []),
                    *(["-o", output.value] if output in (Output.json, Output.yaml) else []),
                    *options.passthrough_args(),
                ]
                return run_foreground(argv, istioctl_adapter.environment(address, settings.istio_namespace))
            token = native_query.istioctl_token(settings.mesh, settings.istio_namespace)
            proxy = None if pod is None else pod if "." in pod else f"{pod}.{namespace or 'default'}"
            statuses, failed = native_query.fetch(address, token, settings.istio_namespace, proxy, flags.timeout)
    for failure in failed:
        progress(f"warning: istiod {failure}")
    if namespace and pod is None:
        statuses = [status for status in statuses if status.namespace == namespace]
    if pod is not None and not statuses:
        progress(f"proxy {proxy} is not connected to any istiod")
        return ExitStatus.ERROR
    if output in (Output.json, Output.yaml):
        sys.stdout.write(render.dump(render.as_document(statuses, failed), output.value))
    else:
        sys.stdout.write(render.table(statuses, wide=output is Output.wide or pod is not None))
    return ExitStatus.SUCCESS
