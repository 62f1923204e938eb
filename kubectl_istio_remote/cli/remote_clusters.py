"""`remote-clusters`: the clusters every istiod replica reads, and whether it is synced with each (istioctl's table)."""

from __future__ import annotations

import click

from kubectl_istio_remote.cli import invocation, options


@options.takes(*options.SESSION)
@click.command(params=[options.output("table", "json", "yaml", help="table, json or yaml.")])
@click.pass_context
def command(ctx: click.Context, output: str) -> int:
    """Show NAME SECRET STATUS ISTIOD for the clusters every istiod replica reads, which istioctl cannot show from a mesh cluster."""
    from kubectl_istio_remote.aggregator.queries import ask_once, debug_request
    from kubectl_istio_remote.native import clusterz, render

    settings = invocation.session_settings(ctx, native=True)
    console = invocation.console(ctx)
    request = debug_request(settings.istio_namespace, clusterz.PAGE)
    replies = invocation.through_session(ctx, settings, lambda connection, token: ask_once(connection, token, request, settings.timeout))
    (response,) = replies.responses
    body = response.resources[0].value if response.resources else b"[]"
    found = clusterz.rows(body, [name for name, _ in replies.sources])
    for disagreement in replies.disagreements:
        console.warning(disagreement)
    if output == "table":
        console.data(clusterz.table(found))
    else:
        console.data(render.dump(clusterz.document(found, replies.failed), output))
    return invocation.report_failed(ctx, settings, replies.failed)
