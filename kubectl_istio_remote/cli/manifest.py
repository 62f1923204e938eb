"""`manifest`: print a permanent aggregator install for operators (apply it with `kubectl apply -f -`)."""

from __future__ import annotations

from typing import Any

import click

from kubectl_istio_remote import __version__
from kubectl_istio_remote.cli import invocation, options
from kubectl_istio_remote.cli.shell_completion import complete_istio_namespace
from kubectl_istio_remote.deploy.install import NAME, Expose, Install, objects, to_yaml
from kubectl_istio_remote.errors import UsageError
from kubectl_istio_remote.istio import DEFAULT_NAMESPACE


@options.takes(options.IMAGE)
@click.command(
    params=[
        options.flag(
            "--namespace",
            "-n",
            "--istio-namespace",
            "-i",
            "namespace",
            help="istiod's namespace (the istio namespace of the mesh cluster with --mesh).",
            default=DEFAULT_NAMESPACE,
            shell_complete=complete_istio_namespace,
        ),
        options.flag("--mesh", help="Print instead what the mesh cluster needs to advertise the aggregator to its users.", default=False),
        options.flag("--address", help="With --mesh: HOST:PORT where mesh users reach the aggregator."),
        options.flag("--ca-file", help="With --mesh: the CA (PEM) that signs the aggregator's serving certificate."),
        options.flag(
            "--cluster-id",
            help="With --mesh: the mesh cluster's Istio cluster ID, when it is not istiod's config cluster (its users' tokens are "
            "reviewed there).",
            default="",
        ),
        options.flag(
            "--expose",
            help="none: a ClusterIP Service; loadbalancer: a LoadBalancer Service; gateway: TLS passthrough on an Istio ingress gateway.",
            type=options.values_of(Expose),
            default=Expose.none.value,
        ),
        options.flag(
            "--host",
            help="Hostname users dial through the gateway (SNI); needed by --expose gateway. With --mesh: the name the serving "
            "certificate is issued for, when it is not the host of --address.",
        ),
        options.flag("--gateway-selector", help="Label of the ingress gateway's pods.", default="istio=ingressgateway"),
        options.flag("--tls-secret", help="kubernetes.io/tls Secret holding the serving certificate.", default=f"{NAME}-tls"),
        options.flag("--issuer", help="Issuer/NAME or ClusterIssuer/NAME: add a cert-manager Certificate that fills --tls-secret."),
        options.flag("--service-monitor", help="Add a prometheus-operator ServiceMonitor for the metrics port (15014).", default=False),
        options.REVISION,
    ]
)
@click.pass_context
def command(
    ctx: click.Context,
    namespace: str,
    mesh: bool,
    address: str | None,
    ca_file: str | None,
    cluster_id: str,
    host: str | None,
    expose: str,
    issuer: str | None,
    **as_given: Any,
) -> None:
    """Print a Deployment, its ServiceAccount, Role, RoleBinding, Service, NetworkPolicy and PodDisruptionBudget as YAML
    (--service-monitor: and a ServiceMonitor);
    with --mesh, the ConfigMap, Role and RoleBinding that advertise the aggregator in the mesh cluster."""
    if mesh:
        from kubectl_istio_remote.deploy import advertisement

        advertised = advertisement.Advertisement(
            namespace, advertisement.checked_address(address), advertisement.read_ca(ca_file), host or "", __version__, cluster_id
        )
        invocation.console(ctx).data(to_yaml(advertisement.objects(advertised)))
        return
    exposed = Expose(expose)
    if exposed is Expose.gateway and not host:
        raise UsageError("--expose gateway routes on the TLS server name", "add --host, the name users will dial")
    if issuer is not None and issuer.partition("/")[0] not in ("Issuer", "ClusterIssuer"):
        raise UsageError(f"--issuer {issuer!r} is not Issuer/NAME or ClusterIssuer/NAME", "for example --issuer ClusterIssuer/letsencrypt")
    given = invocation.flags(ctx)
    install = Install(
        **as_given,  # --tls-secret, --gateway-selector, --revision, --service-monitor: Install's fields of the same names
        namespace=namespace,
        host=host,
        expose=exposed,
        issuer=issuer,
        image=given.image,
        pull_policy=given.pull_policy.value,
        pull_secrets=given.image_pull_secret,
        version=__version__,
    )
    invocation.console(ctx).data(to_yaml(objects(install)))
