"""`serve`: run the aggregating XDS server that istioctl can use as its --xds-address."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from kubectl_istio_remote.cli import options
from kubectl_istio_remote.completion import complete_istio_namespace
from kubectl_istio_remote.errors import UsageError
from kubectl_istio_remote.workload import ISTIOD_PORT


def command(
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve on; port 0 picks a free one.")] = "127.0.0.1:0",
    plaintext: Annotated[bool, typer.Option(help="Serve without TLS (istioctl --plaintext).")] = False,
    tls_cert: Annotated[Optional[str], typer.Option(help="Serving certificate (PEM); default: one made in memory.")] = None,
    tls_key: Annotated[Optional[str], typer.Option(help="Key of --tls-cert (PEM).")] = None,
    istiod_address: Annotated[
        Optional[list[str]], typer.Option(help="HOST:PORT of an istiod that is not a pod; repeatable.")
    ] = None,
    discover: Annotated[bool, typer.Option(help="Find istiods as running pods and follow them with a watch.")] = False,
    namespace: Annotated[
        Optional[str], typer.Option(
            "--namespace", "-n", envvar="POD_NAMESPACE", help="Namespace of the istiods.", shell_complete=complete_istio_namespace
        )
    ] = None,
    revision: options.Revision = "",
    istiod_label: Annotated[str, typer.Option(help="Label selector of istiod pods.")] = "app=istiod",
    istiod_port: Annotated[int, typer.Option(help="Port dialled on each istiod pod IP.")] = ISTIOD_PORT,
    istiod_ca: Annotated[Optional[str], typer.Option(help="Verify istiod against this CA (PEM); default: no verification, as istioctl.")] = None,
    istiod_plaintext: Annotated[bool, typer.Option(help="Talk to istiod without TLS (port 15010).")] = False,
    istiod_timeout: Annotated[float, typer.Option(help="Seconds each istiod has to answer.")] = 10.0,
    require_all: Annotated[bool, typer.Option(help="Fail instead of answering from the healthy istiods only.")] = False,
    control_plane_id: Annotated[str, typer.Option(help="ID shown in istioctl's ISTIOD column.")] = "<external>",
    max_message_bytes: Annotated[int, typer.Option(help="Largest gRPC message sent or received.")] = 512 * 1024 * 1024,
    kubeconfig: options.Kubeconfig = None,
    context: options.Context = None,
    verbose: options.Verbose = False,
) -> None:
    """Serve istioctl's debug XDS requests by asking every istiod replica at once and merging the answers."""
    if bool(istiod_address) == discover:
        raise UsageError("give either --istiod-address or --discover", "see `serve --help`")
    if (tls_cert is None) != (tls_key is None) or (plaintext and tls_cert):
        raise UsageError("--tls-cert and --tls-key go together, and not with --plaintext", "see `serve --help`")
    options.setup_logging(verbose)

    import asyncio

    from kubectl_istio_remote.aggregator import discovery, server, tls, upstream
    from kubectl_istio_remote.relay import TcpDialer

    istio_namespace = namespace or "istio-system"
    authority = upstream.istiod_authority(istio_namespace, revision)
    if plaintext:
        serving_pair = None
    elif tls_cert and tls_key:
        serving_pair = (_read(tls_key), _read(tls_cert))
    else:
        serving_pair = tls.self_signed_pair(["localhost", authority], ["127.0.0.1"])
    settings = server.Settings(
        listen=listen,
        serving_pair=serving_pair,
        istiod_ca_file=istiod_ca,
        istiod_plaintext=istiod_plaintext,
        istiod_timeout=istiod_timeout,
        require_all=require_all,
        control_plane_id=control_plane_id,
        max_message_bytes=max_message_bytes,
    )
    if discover:
        from kubernetes import client

        from kubectl_istio_remote.kube import api_client

        api = client.CoreV1Api(api_client(kubeconfig, context, in_cluster_first=True))
        source = discovery.PodDiscovery(
            api, istio_namespace, discovery.istiod_selector(istiod_label, revision), istiod_port, authority
        )
    else:
        source = discovery.StaticTargets(_static_target(address, authority) for address in istiod_address or ())
    asyncio.run(server.serve_until_signalled(server.Aggregator(settings, source, TcpDialer())))


def _static_target(address: str, authority: str):  # noqa: ANN202 - lazy import keeps the type out of reach
    from kubectl_istio_remote.relay import Target

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--istiod-address {address!r} is not HOST:PORT", "for example --istiod-address 10.0.0.7:15012")
    return Target(name=address, host=host.strip("[]"), port=int(port), authority=authority)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}", "check --tls-cert and --tls-key") from None


