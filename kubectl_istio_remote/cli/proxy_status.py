"""`proxy-status`: the sync status of every proxy of every istiod replica, through istioctl or natively."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

from kubectl_istio_remote import IMAGE
from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.completion import complete_mesh_namespace
from kubectl_istio_remote.istio import POD_TTL_SECONDS, SESSION_TIMEOUT_SECONDS
from kubectl_istio_remote.session.settings import Mode, PullPolicy
from kubectl_istio_remote.status import ExitStatus

#: istioctl honours -o json|yaml for proxy-status from 1.30.
ISTIOCTL_STRUCTURED_OUTPUT = (1, 30)


class Output(str, enum.Enum):
    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"


def command(
    ctx: typer.Context,
    pod: Annotated[Optional[str], typer.Argument(help="One proxy: POD or POD.NAMESPACE.")] = None,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, wide (one column per xDS type), json or yaml.")] = Output.table,
    namespace: Annotated[
        Optional[str],
        typer.Option("--namespace", "-n", help="Namespace of POD, or of the proxies listed.", shell_complete=complete_mesh_namespace),
    ] = None,
    native: Annotated[bool, typer.Option("--native", help="Print the answer ourselves instead of running istioctl.")] = False,
    istioctl_path: options.IstioctlPath = None,
    kubeconfig: options.Kubeconfig = None,
    context: options.Context = None,
    external_context: options.ExternalContext = None,
    istio_namespace: options.IstioNamespace = None,
    revision: options.Revision = "",
    mode: options.ModeOption = Mode.auto,
    aggregator: options.Aggregator = None,
    aggregator_ca: options.AggregatorCa = None,
    timeout: options.Timeout = SESSION_TIMEOUT_SECONDS,
    ttl: options.Ttl = POD_TTL_SECONDS,
    image: options.Image = IMAGE,
    image_pull_secret: options.ImagePullSecret = None,
    pull_policy: options.PullPolicyOption = PullPolicy.IfNotPresent,
    verbose: options.Verbose = False,
) -> int:
    """Show the sync status of every proxy in the mesh, from every istiod replica. Arguments after -- go to istioctl."""
    from kubectl_istio_remote import istioctl as istioctl_adapter
    from kubectl_istio_remote.process import run_foreground
    from kubectl_istio_remote.session.lifecycle import open_session
    from kubectl_istio_remote.signals import signals_interrupt

    # istioctl's version is read while the contexts are resolved; a wrong --istioctl is still the first error.
    lookup = (lambda: None) if native else istioctl_adapter.find_soon(istioctl_path)
    settings = invocation.session_settings(ctx, earlier_errors=lookup)
    istioctl = lookup()
    console = invocation.console(ctx, verbose)
    if not native and istioctl is None:
        console.progress("istioctl is not on PATH: printing the answer natively (--native)")
    elif istioctl is not None and output in (Output.json, Output.yaml) and istioctl.release < ISTIOCTL_STRUCTURED_OUTPUT:
        console.progress(f"istioctl {istioctl.version} has no -o {output.value} for proxy-status: printing it natively")
        istioctl = None
    if istioctl is not None:
        with signals_interrupt(), open_session(settings, console, istioctl=istioctl) as connection:
            argv = [
                istioctl.path,
                *istioctl_adapter.cluster_flags(settings.mesh.kubeconfig, settings.mesh.context),
                *istioctl.proxy_status_command(),
                *([pod] if pod else []),
                *(["-n", namespace] if namespace else []),
                *(["-o", output.value] if output in (Output.json, Output.yaml) else []),
                *invocation.current(ctx).passthrough,
            ]
            return run_foreground(argv, istioctl_adapter.environment(connection.address, settings.istio_namespace))
    from kubectl_istio_remote import render  # the Envoy protos: imported after the first requests have gone out

    proxy = None if pod is None else pod if "." in pod else f"{pod}.{namespace or 'default'}"
    syncz = invocation.native_syncz(ctx, settings, proxy, timeout)
    statuses, failed = syncz.statuses, syncz.failed
    if namespace and pod is None:
        statuses = [status for status in statuses if status.namespace == namespace]
    if pod is not None and not statuses:
        console.progress(f"proxy {proxy} is not connected to any istiod")
        return ExitStatus.ERROR
    if output in (Output.json, Output.yaml):
        console.data(render.dump(render.as_document(statuses, failed), output.value))
    else:
        console.data(render.table(statuses, wide=output is Output.wide or pod is not None))
    return invocation.report_failed(ctx, settings, failed)
