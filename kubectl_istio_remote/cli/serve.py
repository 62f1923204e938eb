"""`serve`: run the aggregating XDS server that istioctl can use as its --xds-address."""

from __future__ import annotations

from typing import Any

import click

from kubectl_istio_remote.aggregator.serving import ISTIOD_MAX_IN_FLIGHT, MAX_QUEUE_SECONDS
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

UNBOUNDED = "no --max-memory and no container memory limit: the memory of answers in flight is not bounded"


def switch(name: str, help: str) -> click.Option:
    """serve's on/off flags, with a --no- twin each (deployments written before may pass either)."""
    return options.flag(f"--{name}/--no-{name}", help=help, default=False)


@options.takes(options.CONNECTION, options.VERBOSE)
@click.command(
    params=[
        options.flag("--listen", help="HOST:PORT to serve on; port 0 picks a free one.", default="127.0.0.1:0"),
        switch("plaintext", "Serve without TLS (istioctl --plaintext)."),
        options.flag("--tls-cert", help="Serving certificate (PEM), served anew when the file changes; default: one made in memory."),
        options.flag("--tls-key", help="Key of --tls-cert (PEM)."),
        options.flag("--istiod-address", help="HOST:PORT of an istiod that is not a pod; repeatable.", multiple=True),
        switch("discover", "Find istiods as running pods and follow them with a watch."),
        options.flag(
            "--namespace",
            "-n",
            envvar="POD_NAMESPACE",
            show_envvar=True,
            help="Namespace of the istiods.",
            shell_complete=complete_istio_namespace,
        ),
        options.REVISION,
        options.flag("--istiod-label", help="Label selector of istiod pods.", default=ISTIOD_LABEL),
        options.flag("--istiod-port", help="Port dialled on each istiod pod IP.", default=ISTIOD_PORT),
        options.flag("--istiod-ca", help="Verify istiod against this CA (PEM); default: no verification, as istioctl."),
        switch("istiod-plaintext", "Talk to istiod without TLS (port 15010)."),
        options.flag("--istiod-timeout", help="Seconds each istiod has to answer.", default=ISTIOD_TIMEOUT_SECONDS),
        switch("require-all", "Fail instead of answering from the healthy istiods only."),
        options.flag("--control-plane-id", help="ID shown in istioctl's ISTIOD column.", default=CONTROL_PLANE_ID),
        options.flag("--max-message-bytes", help="Largest gRPC message sent or received.", default=MAX_MESSAGE_BYTES),
        switch("allow-debug-changes", "Pass on debug pages that change istiod (adsz?push=true, cachez?clear=true, force_disconnect)."),
        options.flag(
            "--istiod-max-in-flight",
            help="Our requests at one istiod replica at a time; more wait in line (0: no bound).",
            type=click.IntRange(min=0),
            default=ISTIOD_MAX_IN_FLIGHT,
        ),
        options.flag(
            "--max-queue-seconds",
            help="The longest a call waits in a replica's line (sooner when its caller's deadline is).",
            default=MAX_QUEUE_SECONDS,
        ),
        options.flag(
            "--max-memory",
            help="Memory the answers in flight may take (384Mi, 1Gi); past it new calls are refused as busy "
            "(default: the container's memory limit, less what serve uses at start).",
        ),
        options.flag("--metrics-listen", help="HOST:PORT to serve Prometheus metrics on, at /metrics (port 0 picks one)."),
        options.flag(
            "--cluster-id",
            help="Istio cluster ID istiod reviews the tokens of callers that send none in (default: istiod's config cluster).",
            default="",
        ),
    ]
)
@click.pass_context
def command(
    ctx: click.Context,
    plaintext: bool,
    tls_cert: str | None,
    tls_key: str | None,
    istiod_address: tuple[str, ...],
    discover: bool,
    namespace: str | None,
    revision: str,
    istiod_label: str,
    istiod_port: int,
    istiod_ca: str | None,
    istiod_max_in_flight: int,
    max_memory: str | None,
    **as_given: Any,
) -> None:
    """Serve istioctl's debug XDS requests by asking every istiod replica at once and merging the answers."""
    if bool(istiod_address) == discover:
        raise UsageError("give either --istiod-address or --discover", "see `serve --help`")
    if (tls_cert is None) != (tls_key is None) or (plaintext and tls_cert):
        raise UsageError("--tls-cert and --tls-key go together, and not with --plaintext", "see `serve --help`")
    console = invocation.console(ctx)
    memory = given_size(max_memory)

    import asyncio

    from kubectl_istio_remote.aggregator import assembly, server, serving
    from kubectl_istio_remote.aggregator.tls import CertificateProblem, read_pair
    from kubectl_istio_remote.relay import TcpDialer
    from kubectl_istio_remote.startup import settle_start_up

    replicas = assembly.Replicas(namespace or DEFAULT_NAMESPACE, revision, istiod_label, istiod_port, istiod_address)
    for address in replicas.addresses:
        assembly.static_target(address, replicas.authority)  # a mistyped one is a usage error before anything starts
    files = (tls_cert, tls_key) if tls_cert and tls_key else None
    if files:
        try:
            read_pair(*files)
        except CertificateProblem as problem:
            raise UsageError(str(problem), "check --tls-cert and --tls-key") from None
    settings = serving.Settings(
        **as_given,  # --listen, --istiod-timeout, --require-all, ...: serving.Settings' fields of the same names
        serving_pair=None if plaintext or files else assembly.self_signed_serving_pair(replicas),
        serving_files=files,
        istiod_ca_file=istiod_ca,
        istiod_max_in_flight=istiod_max_in_flight or None,
        max_memory=memory if max_memory else container_budget(),
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
    unbounded = settings.max_memory is None
    asyncio.run(server.serve_until_signalled(aggregator, console, started=lambda: console.warning(UNBOUNDED) if unbounded else None))


def given_size(given: str | None) -> int | None:
    """--max-memory in bytes."""
    from kubectl_istio_remote.aggregator.load import parse_size

    try:
        return None if given is None else parse_size(given)
    except ValueError as error:
        raise UsageError(f"--max-memory {error}", "for example --max-memory 384Mi") from None


def container_budget() -> int | None:
    """Without --max-memory: the container's memory limit less what serve holds now; None outside a limit (UNBOUNDED is said)."""
    from kubectl_istio_remote.aggregator.load import container_limit, resident_bytes

    limit = container_limit()
    return None if limit is None else max(limit - resident_bytes(), limit // 4)
