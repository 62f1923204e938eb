"""`serve`: run the aggregating XDS server that istioctl can use as its --xds-address."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.cli.shell_completion import complete_istio_namespace
from kubectl_istio_remote.errors import UsageError
from kubectl_istio_remote.istio import (
    CONTROL_PLANE_ID,
    DEFAULT_NAMESPACE,
    ISTIOD_LABEL,
    ISTIOD_PORT,
    ISTIOD_TIMEOUT_SECONDS,
    MAX_MESSAGE_BYTES,
)


@options.takes(options.connection, options.verbose)
def command(
    ctx: typer.Context,
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve on; port 0 picks a free one.")] = "127.0.0.1:0",
    plaintext: Annotated[bool, typer.Option(help="Serve without TLS (istioctl --plaintext).")] = False,
    tls_cert: Annotated[Optional[str], typer.Option(help="Serving certificate (PEM); default: one made in memory.")] = None,
    tls_key: Annotated[Optional[str], typer.Option(help="Key of --tls-cert (PEM).")] = None,
    istiod_address: Annotated[Optional[list[str]], typer.Option(help="HOST:PORT of an istiod that is not a pod; repeatable.")] = None,
    discover: Annotated[bool, typer.Option(help="Find istiods as running pods and follow them with a watch.")] = False,
    namespace: Annotated[
        Optional[str],
        typer.Option(
            "--namespace", "-n", envvar="POD_NAMESPACE", help="Namespace of the istiods.", shell_complete=complete_istio_namespace
        ),
    ] = None,
    revision: options.Revision = "",
    istiod_label: Annotated[str, typer.Option(help="Label selector of istiod pods.")] = ISTIOD_LABEL,
    istiod_port: Annotated[int, typer.Option(help="Port dialled on each istiod pod IP.")] = ISTIOD_PORT,
    istiod_ca: Annotated[
        Optional[str], typer.Option(help="Verify istiod against this CA (PEM); default: no verification, as istioctl.")
    ] = None,
    istiod_plaintext: Annotated[bool, typer.Option(help="Talk to istiod without TLS (port 15010).")] = False,
    istiod_timeout: Annotated[float, typer.Option(help="Seconds each istiod has to answer.")] = ISTIOD_TIMEOUT_SECONDS,
    require_all: Annotated[bool, typer.Option(help="Fail instead of answering from the healthy istiods only.")] = False,
    control_plane_id: Annotated[str, typer.Option(help="ID shown in istioctl's ISTIOD column.")] = CONTROL_PLANE_ID,
    max_message_bytes: Annotated[int, typer.Option(help="Largest gRPC message sent or received.")] = MAX_MESSAGE_BYTES,
    allow_debug_changes: Annotated[
        bool, typer.Option(help="Pass on debug pages that change istiod (adsz?push=true, cachez?clear=true, force_disconnect).")
    ] = False,
) -> None:
    """Serve istioctl's debug XDS requests by asking every istiod replica at once and merging the answers."""
    if bool(istiod_address) == discover:
        raise UsageError("give either --istiod-address or --discover", "see `serve --help`")
    if (tls_cert is None) != (tls_key is None) or (plaintext and tls_cert):
        raise UsageError("--tls-cert and --tls-key go together, and not with --plaintext", "see `serve --help`")
    console = invocation.console(ctx)

    import asyncio

    from kubectl_istio_remote.aggregator import assembly, server
    from kubectl_istio_remote.relay import TcpDialer
    from kubectl_istio_remote.startup import settle_start_up

    replicas = assembly.Replicas(namespace or DEFAULT_NAMESPACE, revision, istiod_label, istiod_port, tuple(istiod_address or ()))
    if plaintext:
        serving_pair = None
    elif tls_cert and tls_key:
        serving_pair = (_read(tls_key), _read(tls_cert))
    else:
        serving_pair = assembly.self_signed_serving_pair(replicas)
    settings = server.Settings(
        listen=listen,
        serving_pair=serving_pair,
        istiod_ca_file=istiod_ca,
        istiod_plaintext=istiod_plaintext,
        istiod_timeout=istiod_timeout,
        require_all=require_all,
        control_plane_id=control_plane_id,
        max_message_bytes=max_message_bytes,
        allow_debug_changes=allow_debug_changes,
    )
    cluster = None
    if discover:
        from kubectl_istio_remote.kube.cluster import SERVE_USER_AGENT, Cluster, transport_for

        given = invocation.flags(ctx)
        transport = transport_for(
            given.connection.kubeconfig,
            given.connection.context,
            in_cluster_first=True,
            user_agent=SERVE_USER_AGENT,
            flags=given.connection,
        )
        cluster = Cluster(given.connection.context or "in-cluster", given.connection.kubeconfig, transport)
    aggregator = assembly.assemble(settings, replicas, TcpDialer(), cluster)
    settle_start_up()  # serve runs for hours: collect what it allocates from now on
    asyncio.run(server.serve_until_signalled(aggregator, console))


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}", "check --tls-cert and --tls-key") from None
