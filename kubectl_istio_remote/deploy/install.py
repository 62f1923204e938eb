"""A permanent aggregator for operators who serve many mesh users: the objects `manifest` prints.

Unlike pod mode's short-lived pod, this one is exposed beyond port-forward, so it always serves
TLS from a Secret the operator provides (or cert-manager issues): no key material is generated
into the output, and none is in this repository. istioctl still authenticates to istiod with
its own token, which the aggregator forwards unchanged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from kubectl_istio_remote.deploy.workload import (
    AGGREGATOR_PORT,
    NOT_MESHED,
    POD_SECURITY_CONTEXT,
    RUN_AS_USER,
    aggregator_container,
    identity_objects,
)
from kubectl_istio_remote.istio import ISTIOD_PORT
from kubectl_istio_remote.kube.kinds import (
    CERTIFICATE,
    DEPLOYMENT,
    GATEWAY,
    NETWORK_POLICY,
    POD_DISRUPTION_BUDGET,
    SERVICE,
    SERVICE_MONITOR,
    VIRTUAL_SERVICE,
)

NAME = "istio-remote-proxy"
#: Prometheus scrapes `serve --metrics-listen` here, as it scrapes istiod's own monitoring port.
METRICS_PORT = 15014
METRICS_PORT_NAME = "http-monitoring"
SCRAPE_ANNOTATIONS = {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT), "prometheus.io/path": "/metrics"}
TLS_MOUNT = "/etc/istio-remote/tls"
REPLICAS = 2
#: Where the API server is cannot be selected by a NetworkPolicy; these are its usual ports.
API_SERVER_PORTS = (443, 6443)


class Expose(str, enum.Enum):
    none = "none"
    loadbalancer = "loadbalancer"
    gateway = "gateway"


@dataclass(frozen=True)
class Install:
    namespace: str
    image: str
    pull_policy: str = "IfNotPresent"
    #: Secrets the kubelet pulls the image with (a mirror's registry).
    pull_secrets: tuple[str, ...] = ()
    expose: Expose = Expose.none
    #: The hostname istioctl dials through the gateway (SNI); required with Expose.gateway.
    host: str | None = None
    gateway_selector: str = "istio=ingressgateway"
    tls_secret: str = f"{NAME}-tls"
    #: "Issuer/NAME" or "ClusterIssuer/NAME": emit a cert-manager Certificate that fills tls_secret.
    issuer: str | None = None
    revision: str = ""
    version: str = ""
    #: Add a prometheus-operator ServiceMonitor for the metrics port.
    service_monitor: bool = False

    @property
    def labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/version": self.version}

    @property
    def selector(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": NAME}

    @property
    def gateway_labels(self) -> dict[str, str]:
        key, _, value = self.gateway_selector.partition("=")
        return {key: value}

    @property
    def service_host(self) -> str:
        return f"{NAME}.{self.namespace}.svc"


def objects(install: Install) -> list[dict[str, Any]]:
    """Every object of the install, in the order `kubectl apply` should create them."""
    built = [
        *identity_objects(_metadata(install)).values(),
        *([_certificate(install)] if install.issuer else []),
        _deployment(install),
        _service(install),
        _disruption_budget(install),
        _network_policy(install),
        *([_service_monitor(install)] if install.service_monitor else []),
    ]
    if install.expose is Expose.gateway:
        built += [_gateway(install), _virtual_service(install)]
    return built


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """Objects as one YAML stream for `kubectl apply -f -`."""
    import yaml  # only this command prints YAML: kept off every other command's start-up

    class PlainDumper(yaml.SafeDumper):
        """Objects share dicts (probes, metadata); operators read and diff the output, so no YAML anchors."""

        def ignore_aliases(self, data: object) -> bool:
            return True

    return yaml.dump_all(documents, Dumper=PlainDumper, sort_keys=False)


def serve_args(install: Install) -> list[str]:
    args = [
        "serve",
        "--discover",
        "--listen",
        f"0.0.0.0:{AGGREGATOR_PORT}",
        "--tls-cert",
        f"{TLS_MOUNT}/tls.crt",
        "--tls-key",
        f"{TLS_MOUNT}/tls.key",
        "--metrics-listen",
        f"0.0.0.0:{METRICS_PORT}",
    ]
    return args + (["--revision", install.revision] if install.revision else [])


def _metadata(install: Install) -> dict[str, Any]:
    return {"name": NAME, "namespace": install.namespace, "labels": install.labels}


def _certificate(install: Install) -> dict[str, Any]:
    """cert-manager renews the Secret; the kubelet updates the mounted files and serve serves the renewal, no restart."""
    kind, _, name = (install.issuer or "").partition("/")
    hosts = [install.service_host, f"{install.service_host}.cluster.local", *([install.host] if install.host else [])]
    return CERTIFICATE.manifest(
        _metadata(install),
        spec={
            "secretName": install.tls_secret,
            "dnsNames": hosts,
            "usages": ["server auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {"group": "cert-manager.io", "kind": kind, "name": name},
        },
    )


def _deployment(install: Install) -> dict[str, Any]:
    probe = {"tcpSocket": {"port": AGGREGATOR_PORT}, "periodSeconds": 10}
    container = aggregator_container(
        install.image,
        install.pull_policy,
        serve_args(install),
        readinessProbe={**probe, "initialDelaySeconds": 1},
        livenessProbe={**probe, "initialDelaySeconds": 10, "failureThreshold": 3},
        volumeMounts=[{"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True}],
        ports=[
            {"name": "grpc", "containerPort": AGGREGATOR_PORT, "protocol": "TCP"},
            {"name": METRICS_PORT_NAME, "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
    )
    return DEPLOYMENT.manifest(
        _metadata(install),
        spec={
            "replicas": REPLICAS,
            "selector": {"matchLabels": install.selector},
            "template": {
                "metadata": {"labels": install.labels, "annotations": {**NOT_MESHED, **SCRAPE_ANNOTATIONS}},
                "spec": {
                    "serviceAccountName": NAME,
                    "enableServiceLinks": False,
                    **({"imagePullSecrets": [{"name": secret} for secret in install.pull_secrets]} if install.pull_secrets else {}),
                    # The Secret's files are group-readable only (0440): fsGroup lets the non-root user read them.
                    "securityContext": {**POD_SECURITY_CONTEXT, "fsGroup": RUN_AS_USER},
                    "containers": [container],
                    "volumes": [{"name": "tls", "secret": {"secretName": install.tls_secret, "defaultMode": 0o440}}],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": install.selector},
                        }
                    ],
                },
            },
        },
    )


def _service(install: Install) -> dict[str, Any]:
    port = {"name": "tls-grpc", "port": AGGREGATOR_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}
    metrics = {"name": METRICS_PORT_NAME, "port": METRICS_PORT, "targetPort": METRICS_PORT_NAME, "protocol": "TCP"}
    spec: dict[str, Any] = {"selector": install.selector, "ports": [port, metrics]}
    if install.expose is Expose.loadbalancer:
        spec["type"] = "LoadBalancer"
    return SERVICE.manifest(_metadata(install), spec=spec)


def _disruption_budget(install: Install) -> dict[str, Any]:
    return POD_DISRUPTION_BUDGET.manifest(
        _metadata(install),
        spec={"minAvailable": 1, "selector": {"matchLabels": install.selector}},
    )


def _network_policy(install: Install) -> dict[str, Any]:
    """In: the serving port (from the gateway's pods when exposed through one), and the metrics port for Prometheus,
    wherever it runs. Out: istiod, DNS, the API server."""
    source: list[dict[str, Any]] = []
    if install.expose is Expose.gateway:
        source = [{"namespaceSelector": {}, "podSelector": {"matchLabels": install.gateway_labels}}]
    dns = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    return NETWORK_POLICY.manifest(
        _metadata(install),
        spec={
            "podSelector": {"matchLabels": install.selector},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"ports": [{"port": AGGREGATOR_PORT, "protocol": "TCP"}], **({"from": source} if source else {})},
                {"ports": [{"port": METRICS_PORT, "protocol": "TCP"}]},
            ],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"app": "istiod"}}}], "ports": [{"port": ISTIOD_PORT, "protocol": "TCP"}]},
                {"ports": dns},
                {"ports": [{"port": port, "protocol": "TCP"} for port in API_SERVER_PORTS]},
            ],
        },
    )


def _service_monitor(install: Install) -> dict[str, Any]:
    """prometheus-operator's scrape of the Service's metrics port, for clusters that run it."""
    return SERVICE_MONITOR.manifest(
        _metadata(install),
        spec={
            "selector": {"matchLabels": install.selector},
            "namespaceSelector": {"matchNames": [install.namespace]},
            "endpoints": [{"port": METRICS_PORT_NAME, "path": "/metrics", "interval": "30s"}],
        },
    )


def _gateway(install: Install) -> dict[str, Any]:
    """TLS passthrough: the aggregator's own certificate reaches istioctl; the gateway routes on SNI only."""
    server = {
        "port": {"number": AGGREGATOR_PORT, "name": "tls-istio-remote", "protocol": "TLS"},
        "tls": {"mode": "PASSTHROUGH"},
        "hosts": [install.host],
    }
    return GATEWAY.manifest(
        _metadata(install),
        spec={"selector": install.gateway_labels, "servers": [server]},
    )


def _virtual_service(install: Install) -> dict[str, Any]:
    route = {"destination": {"host": f"{install.service_host}.cluster.local", "port": {"number": AGGREGATOR_PORT}}}
    return VIRTUAL_SERVICE.manifest(
        _metadata(install),
        spec={
            "hosts": [install.host],
            "gateways": [NAME],
            "tls": [{"match": [{"port": AGGREGATOR_PORT, "sniHosts": [install.host]}], "route": [route]}],
        },
    )
