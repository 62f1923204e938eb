"""`proxy-status`: the sync status of every proxy of every istiod replica, through istioctl or natively."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.cli.shell_completion import complete_mesh_namespace
from kubectl_istio_remote.status import ExitStatus

if TYPE_CHECKING:
    from kubectl_istio_remote.aggregator.client import Connection
    from kubectl_istio_remote.console import Console
    from kubectl_istio_remote.native.render import ProxyStatus
    from kubectl_istio_remote.session.settings import SessionSettings

#: istioctl honours -o json|yaml for proxy-status from 1.30.
ISTIOCTL_STRUCTURED_OUTPUT = (1, 30)


@options.takes(*options.SESSION)
@click.command(
    params=[
        click.Argument(["pod"], required=False),
        options.output("table", "wide", "json", "yaml", help="table, wide (one column per xDS type), json or yaml."),
        options.flag("--namespace", "-n", help="Namespace of POD, or of the proxies listed.", shell_complete=complete_mesh_namespace),
        options.flag("--native", help="Print the answer ourselves instead of running istioctl.", default=False),
        options.ISTIOCTL,
    ]
)
@click.pass_context
def command(ctx: click.Context, pod: str | None, output: str, namespace: str | None, native: bool, istioctl_path: str | None) -> int:
    """Show the sync status of every proxy in the mesh, from every istiod replica; POD (or POD.NAMESPACE) shows one proxy.
    Arguments after -- go to istioctl."""
    from kubectl_istio_remote import istioctl as istioctl_adapter
    from kubectl_istio_remote.process import run_foreground
    from kubectl_istio_remote.session.lifecycle import open_session
    from kubectl_istio_remote.signals import signals_interrupt

    # istioctl's version is read while the contexts are resolved; a wrong --istioctl is still the first error.
    lookup = (lambda: None) if native else istioctl_adapter.find_soon(istioctl_path)
    settings = invocation.session_settings(ctx, earlier_errors=lookup, native=native)
    istioctl = lookup()
    console = invocation.console(ctx)
    given = invocation.flags(ctx).connection
    if not native and istioctl is None:
        console.progress("istioctl is not on PATH: printing the answer natively (--native)")
    elif istioctl is not None and output in options.STRUCTURED and istioctl.release < ISTIOCTL_STRUCTURED_OUTPUT:
        console.progress(f"istioctl {istioctl.version} has no -o {output} for proxy-status: printing it natively")
        istioctl = None
    elif istioctl is not None and (not_taken := istioctl_adapter.flags_not_taken(given)):
        console.progress(f"istioctl takes no {', '.join(not_taken)}: printing the answer natively")
        istioctl = None
    elif istioctl is not None and given.request_seconds and istioctl.release < istioctl_adapter.KUBECLIENT_TIMEOUT:
        console.progress(f"istioctl {istioctl.version} has no --kubeclient-timeout: its own 15 s limit applies to its requests")
    if istioctl is not None:
        # istioctl reaches a shared aggregator through our relay, which verifies its certificate: no health check first
        # (three round trips), a failure explained after istioctl has said it.
        with signals_interrupt(), open_session(settings, console, istioctl=istioctl, check_first=False) as connection:
            argv = [
                istioctl.path,
                *istioctl_adapter.cluster_flags(istioctl, settings.mesh.kubeconfig, settings.mesh.context, given),
                *istioctl.proxy_status_command(),
                *([pod] if pod else []),
                *(["-n", namespace] if namespace else []),
                *(["-o", output] if output in options.STRUCTURED else []),
                *invocation.current(ctx).passthrough,
            ]
            code = run_foreground(argv, istioctl_adapter.environment(connection.address, settings.istio_namespace))
            if code != 0 and pod is not None:
                _explain_other_cluster(console, settings, connection, _proxy_name(pod, namespace))
            if code != 0 and settings.shared is not None:
                from kubectl_istio_remote.session.shared_mode import explain_failure

                explain_failure(settings.shared, settings.timeout)
            return code
    from kubectl_istio_remote.native import render  # the Envoy protos: imported after the first requests have gone out

    proxy = None if pod is None else _proxy_name(pod, namespace)
    syncz = invocation.native_syncz(ctx, settings, proxy)
    statuses, failed = syncz.statuses, syncz.failed
    if namespace and pod is None:
        statuses = [status for status in statuses if status.namespace == namespace]
    if pod is not None and not statuses:
        console.progress(f"proxy {proxy} is not connected to any istiod")
        return ExitStatus.ERROR
    if pod is not None and (elsewhere := other_cluster(statuses[0], syncz.cluster_id, settings.mesh.context)):
        console.warning(elsewhere)
    if output in options.STRUCTURED:
        console.data(render.dump(render.as_document(statuses, failed), output))
    else:
        console.data(render.table(statuses, wide=output == "wide" or pod is not None))
    return invocation.report_failed(ctx, settings, failed)


def _proxy_name(pod: str, namespace: str | None) -> str:
    return pod if "." in pod else f"{pod}.{namespace or 'default'}"


def other_cluster(status: ProxyStatus, cluster_id: str, context: str) -> str:
    """What is wrong when the proxy asked for is not in the current context's mesh cluster ("" when it is, or unknown)."""
    if not cluster_id or not status.cluster or status.cluster == cluster_id:
        return ""
    return (
        f"{status.name} is a proxy of mesh cluster {status.cluster}, not of context {context}'s ({cluster_id}): "
        f"pass --context with a context of {status.cluster}"
    )


def _explain_other_cluster(console: Console, settings: SessionSettings, connection: Connection, proxy: str) -> None:
    """After istioctl failed on one pod: say so if the pod is in another mesh cluster (istioctl looks in this one only)."""
    from kubectl_istio_remote.aggregator.queries import fetch
    from kubectl_istio_remote.errors import UserError
    from kubectl_istio_remote.session.token import istioctl_token

    try:
        found = fetch(
            connection, istioctl_token(settings.mesh, settings.istio_namespace), settings.istio_namespace, proxy, settings.timeout
        )
    except (UserError, OSError) as error:  # only an explanation: istioctl has said what failed
        console.detail(f"cannot look {proxy} up natively: {error}")
        return
    if found.statuses and (elsewhere := other_cluster(found.statuses[0], found.cluster_id, settings.mesh.context)):
        console.error(elsewhere)
