"""An external Istio control plane: N real istiod replicas for two mesh clusters, and real Envoys in each.

Each istiod replica is a pod `istiod-<i>` (label app=istiod) in namespace external-istiod of
`external`, backed by a pilot-discovery process listening on that pod's loopback IP, with a kwok
PortForward so `kubectl port-forward` reaches it. istiod reads its configuration from `remote`;
`remote-2` is registered with it as `istioctl create-remote-secret` does it. Each Envoy matches a
pod `sleep-<j>` in its mesh cluster's own namespace and holds an ADS stream to one replica.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import envoy
import yaml
from kubernetes import client

from tests.sandbox import build, mesh_clusters, procs
from tests.sandbox.clusters import api, apply, context_kubeconfig
from tests.sandbox.mesh_clusters import CONFIG_CLUSTER, MESH_CLUSTERS, MeshCluster
from tests.sandbox.objects import ISTIO_NAMESPACE, namespace_manifest, pod_manifest, port_forward, service_account_manifest, wait_pod_ip
from tests.sandbox.paths import STATE, log

ISTIOD_PORTS = (15010, 15012, 15014, 8080)
ISTIO_VERSION = "1.31-dev"
#: Sidecars of each mesh cluster but the config cluster (whose count is `up`'s `proxies`).
SIDECARS_PER_OTHER_CLUSTER = 3


@dataclass(frozen=True)
class Sidecar:
    pod: str
    cluster: MeshCluster
    #: The istiod replica it is connected to (round robin over every sidecar of the mesh).
    replica: int

    @property
    def name(self) -> str:
        """As istiod and istioctl name it: `pod.namespace`."""
        return f"{self.pod}.{self.cluster.namespace}"


def sidecars(proxies: int, istiods: int) -> list[Sidecar]:
    """Every sidecar of the sandbox: `proxies` in the config cluster, then those of the other mesh clusters."""
    counts = [proxies] + [SIDECARS_PER_OTHER_CLUSTER] * (len(MESH_CLUSTERS) - 1)
    pods = [(f"sleep-{index}", cluster) for cluster, count in zip(MESH_CLUSTERS, counts, strict=True) for index in range(count)]
    return [Sidecar(pod, cluster, number % istiods) for number, (pod, cluster) in enumerate(pods)]


def mesh_config() -> Path:
    path = STATE / "mesh.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                # As Istio's charts do: the root namespace is istiod's own, so callers there may debug the whole mesh.
                "rootNamespace": ISTIO_NAMESPACE,
                "trustDomain": "cluster.local",
                # No pilot-agent here to serve certificates over SDS: clusters without auto mTLS
                # finish warming, so Envoy goes on to subscribe to listeners as istio-proxy does.
                "enableAutoMtls": False,
                "defaultConfig": {"discoveryAddress": f"istiod.{ISTIO_NAMESPACE}.svc:15012"},
            }
        )
    )
    return path


def start_istiod(index: int, address: str, kubeconfig: Path, mesh: Path) -> None:
    name = f"istiod-{index}"
    workdir = STATE / name
    workdir.mkdir(parents=True, exist_ok=True)
    procs.start(
        name,
        [
            build.binary("pilot-discovery"),
            "discovery",
            f"--kubeconfig={kubeconfig}",
            f"--meshConfig={mesh}",
            "--networksConfig=/dev/null",
            f"--grpcAddr={address}:15010",
            f"--secureGRPCAddr={address}:15012",
            f"--monitoringAddr={address}:15014",
            f"--httpAddr={address}:8080",
            f"--httpsAddr={address}:15017",
            f"--clusterID={CONFIG_CLUSTER.name}",
            f"--ctrlz_address={address}",
            "--log_output_level=default:warn",
        ],
        env={
            "POD_NAME": name,
            "POD_NAMESPACE": ISTIO_NAMESPACE,
            "REVISION": "default",
            "JWT_POLICY": "third-party-jwt",
            "PILOT_CERT_PROVIDER": "istiod",
            "ISTIOD_CUSTOM_HOST": f"istiod.{ISTIO_NAMESPACE}.svc",
            "INJECTION_WEBHOOK_CONFIG_NAME": "",
            "VALIDATION_WEBHOOK_CONFIG_NAME": "",
            "PILOT_ENABLE_ANALYSIS": "false",
            # Upstream Envoy lacks istio-proxy's own extensions; without this it NACKs every cluster.
            "PILOT_ENABLE_METADATA_EXCHANGE": "false",
            "PILOT_ENABLE_ALPN_FILTER": "false",
            "KUBECONFIG": str(kubeconfig),
        },
        cwd=workdir,
    )


def istiod_addresses() -> list[str]:
    with api("external") as api_client:
        pods = client.CoreV1Api(api_client).list_namespaced_pod(ISTIO_NAMESPACE, label_selector="app=istiod")
    return [pod.status.pod_ip for pod in sorted(pods.items, key=lambda pod: pod.metadata.name) if pod.status.pod_ip]


def _start_istiods(count: int) -> list[str]:
    apply(
        "external",
        [
            namespace_manifest(ISTIO_NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"}),
            service_account_manifest("istiod", ISTIO_NAMESPACE),
        ],
    )
    kubeconfig, mesh = context_kubeconfig(CONFIG_CLUSTER.name), mesh_config()
    addresses = []
    for index in range(count):
        name = f"istiod-{index}"
        labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}
        apply("external", [pod_manifest(name, ISTIO_NAMESPACE, labels, "istiod", f"docker.io/istio/pilot:{ISTIO_VERSION}")])
        address = wait_pod_ip("external", ISTIO_NAMESPACE, name)
        apply("external", [port_forward(name, ISTIO_NAMESPACE, address, ISTIOD_PORTS)])
        log(f"starting {name} on {address}")
        start_istiod(index, address, kubeconfig, mesh)
        addresses.append(address)
    for index, address in enumerate(addresses):
        procs.wait_until(f"istiod-{index} ready", lambda a=address: _http_ok(f"http://{a}:8080/ready"), 120, process=f"istiod-{index}")
    return addresses


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def _bootstrap(sidecar: Sidecar, address: str, istiod: str) -> dict:
    """A minimal sidecar bootstrap: ADS to one istiod over plaintext 15010, admin on the pod's IP."""
    pod, namespace = sidecar.pod, sidecar.cluster.namespace
    return {
        "node": {
            "id": f"sidecar~{address}~{pod}.{namespace}~{namespace}.svc.cluster.local",
            "cluster": f"{pod.rsplit('-', 1)[0]}.{namespace}",
            "metadata": {
                "ISTIO_VERSION": ISTIO_VERSION,
                "CLUSTER_ID": sidecar.cluster.name,
                "NAMESPACE": namespace,
                "NAME": pod,
                "SERVICE_ACCOUNT": "sleep",
                "LABELS": {"app": "sleep"},
                "WORKLOAD_NAME": "sleep",
                "INTERCEPTION_MODE": "NONE",
                "INSTANCE_IPS": address,
                "MESH_ID": "cluster.local",
                # istiod lists only connections carrying a proxy config in syncz, as pilot-agent sends.
                "PROXY_CONFIG": {"discoveryAddress": f"{istiod}:15010", "proxyMetadata": {}},
            },
        },
        "admin": {"address": {"socket_address": {"address": address, "port_value": 15000}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": "xds-grpc",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "xds-grpc",
                        "endpoints": [
                            {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": istiod, "port_value": 15010}}}}]}
                        ],
                    },
                }
            ]
        },
    }


def _start_sidecars(proxies: int, istiods: list[str]) -> None:
    for sidecar in sidecars(proxies, len(istiods)):
        context, namespace = sidecar.cluster.name, sidecar.cluster.namespace
        apply(context, [pod_manifest(sidecar.pod, namespace, {"app": "sleep"}, "sleep", "docker.io/curlimages/curl:8.8.0")])
        address = wait_pod_ip(context, namespace, sidecar.pod)
        # istioctl reads the sidecar's own config dump through a port-forward to Envoy's admin port.
        apply(context, [port_forward(sidecar.pod, namespace, address, (15000,))])
        _start_sidecar(sidecar, address, istiods[sidecar.replica])


def _start_sidecar(sidecar: Sidecar, address: str, istiod: str) -> None:
    envoy_binary = Path(envoy.__file__).parent / "_bin" / "envoy"
    process = f"envoy-{sidecar.cluster.name}-{sidecar.pod}"
    bootstrap = STATE / f"{process}.json"
    bootstrap.write_text(json.dumps(_bootstrap(sidecar, address, istiod)))
    procs.start(process, [envoy_binary, "-c", bootstrap, "--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"])
    log(f"started Envoy for {sidecar.name} of {sidecar.cluster.name} on {address}, connected to istiod at {istiod}")


def move_istiod(index: int, address: str, moved: list[Sidecar]) -> None:
    """istiod replica `index`, whose pod was recreated at another address (kwok gives the next free one), run there;
    its sidecars connect to it again there, as they would through istiod's Service."""
    name = f"istiod-{index}"
    procs.stop(name)
    apply("external", [port_forward(name, ISTIO_NAMESPACE, address, ISTIOD_PORTS)])
    start_istiod(index, address, context_kubeconfig(CONFIG_CLUSTER.name), mesh_config())
    for sidecar in moved:
        procs.stop(f"envoy-{sidecar.cluster.name}-{sidecar.pod}")
        _start_sidecar(sidecar, wait_pod_ip(sidecar.cluster.name, sidecar.cluster.namespace, sidecar.pod), address)


def up(istiods: int, proxies: int) -> None:
    for cluster in MESH_CLUSTERS:
        mesh_clusters.install(cluster)
    for cluster in MESH_CLUSTERS[1:]:
        mesh_clusters.register(cluster)
    addresses = _start_istiods(istiods)
    mesh_clusters.wait_registered(addresses)
    _start_sidecars(proxies, addresses)
