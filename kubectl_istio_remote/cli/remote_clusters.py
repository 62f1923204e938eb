"""`remote-clusters`: the clusters every istiod replica reads, and whether it is synced with each (istioctl's table)."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from kubectl_istio_remote import IMAGE
from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.istio import POD_TTL_SECONDS, SESSION_TIMEOUT_SECONDS
from kubectl_istio_remote.session.settings import Mode, PullPolicy


class Output(str, enum.Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


def command(
    ctx: typer.Context,
    output: Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")] = Output.table,
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
    """Show NAME SECRET STATUS ISTIOD for the clusters every istiod replica reads, which istioctl cannot show from a mesh cluster."""
    from kubectl_istio_remote import clusters, native, render

    settings = invocation.session_settings(ctx)
    console = invocation.console(ctx, verbose)
    request = native.debug_request(settings.istio_namespace, clusters.PAGE)
    replies = invocation.through_session(ctx, settings, lambda connection, token: native.ask_once(connection, token, request, timeout))
    (response,) = replies.responses
    body = response.resources[0].value if response.resources else b"[]"
    found = clusters.rows(body, [name for name, _ in replies.sources])
    for disagreement in replies.disagreements:
        console.warning(disagreement)
    if output is Output.table:
        console.data(clusters.table(found))
    else:
        console.data(render.dump(clusters.document(found, replies.failed), output.value))
    return invocation.report_failed(ctx, settings, replies.failed)
