"""An external Istio control plane: N real istiod replicas for the `remote` mesh cluster, M real Envoys.

Each istiod replica is a pod `istiod-<i>` (label app=istiod) in namespace external-istiod of
`external`, backed by a pilot-discovery process listening on that pod's loopback IP, with a kwok
PortForward so `kubectl port-forward` reaches it. istiod reads its configuration from `remote`.
Each Envoy matches a pod in namespace `sample` of `remote` and holds an ADS stream to one replica.
"""

from __future__ import annotations

import json
from pathlib import Path

import envoy
import yaml
from kubernetes import client

from tests.sandbox import build, procs
from tests.sandbox.clusters import api, apply, context_kubeconfig
from tests.sandbox.paths import STATE, log

ISTIO_NAMESPACE = "external-istiod"
SAMPLE_NAMESPACE = "sample"
ISTIOD_PORTS = (15010, 15012, 15014, 8080)
ISTIO_VERSION = "1.31-dev"
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 1337,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
    "readOnlyRootFilesystem": True,
}


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def _service_account(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def _pod(name: str, namespace: str, labels: dict[str, str], service_account: str, image: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "serviceAccountName": service_account,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": labels["app"], "image": image, "securityContext": RESTRICTED}],
        },
    }


def port_forward(name: str, namespace: str, address: str, ports: tuple[int, ...], owner_uid: str | None = None) -> dict:
    """kwok's PortForward: port-forward to this pod reaches `address` on the same port."""
    owners = [{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": owner_uid}] if owner_uid else []
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": owners},
        "spec": {"forwards": [{"ports": [port], "target": {"port": port, "address": address}} for port in ports]},
    }


def wait_pod_ip(context: str, namespace: str, name: str) -> str:
    found: dict[str, str] = {}

    def running() -> bool:
        with api(context) as api_client:
            pod = client.CoreV1Api(api_client).read_namespaced_pod(name, namespace)
        if pod.status.phase == "Running" and pod.status.pod_ip:
            found["ip"] = pod.status.pod_ip
            return True
        return False

    procs.wait_until(f"pod {namespace}/{name} in {context} to run", running, 60)
    return found["ip"]


def _istio_module() -> Path:
    return Path(json.loads(build.go_module_info("istio.io/istio", build.ISTIO_PSEUDO_VERSION))["Dir"])


def _install_remote() -> None:
    """What istiod needs in the mesh cluster: the Istio CRDs and the namespaces."""
    crds = [doc for doc in yaml.safe_load_all((_istio_module() / "manifests/charts/base/files/crd-all.gen.yaml").read_text()) if doc]
    apply("remote", crds)
    apply(
        "remote",
        [
            _namespace(ISTIO_NAMESPACE),
            _namespace(SAMPLE_NAMESPACE),
            _service_account("default", ISTIO_NAMESPACE),
            _service_account("sleep", SAMPLE_NAMESPACE),
            # An HTTP service gives every sidecar a route configuration too (RDS), as in a real mesh.
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "sleep", "namespace": SAMPLE_NAMESPACE},
                "spec": {"selector": {"app": "sleep"}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
            },
        ],
    )


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
            "--clusterID=remote",
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
            _namespace(ISTIO_NAMESPACE, {"pod-security.kubernetes.io/enforce": "restricted"}),
            _service_account("istiod", ISTIO_NAMESPACE),
        ],
    )
    kubeconfig, mesh = context_kubeconfig("remote"), mesh_config()
    addresses = []
    for index in range(count):
        name = f"istiod-{index}"
        labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": "default"}
        apply("external", [_pod(name, ISTIO_NAMESPACE, labels, "istiod", f"docker.io/istio/pilot:{ISTIO_VERSION}")])
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


def _bootstrap(pod: str, address: str, istiod: str) -> dict:
    """A minimal sidecar bootstrap: ADS to one istiod over plaintext 15010, admin on the pod's IP."""
    return {
        "node": {
            "id": f"sidecar~{address}~{pod}.{SAMPLE_NAMESPACE}~{SAMPLE_NAMESPACE}.svc.cluster.local",
            "cluster": f"{pod.rsplit('-', 1)[0]}.{SAMPLE_NAMESPACE}",
            "metadata": {
                "ISTIO_VERSION": ISTIO_VERSION,
                "CLUSTER_ID": "remote",
                "NAMESPACE": SAMPLE_NAMESPACE,
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


def _start_sidecars(count: int, istiods: list[str]) -> None:
    for index in range(count):
        pod = f"sleep-{index}"
        apply("remote", [_pod(pod, SAMPLE_NAMESPACE, {"app": "sleep"}, "sleep", "docker.io/curlimages/curl:8.8.0")])
        address = wait_pod_ip("remote", SAMPLE_NAMESPACE, pod)
        # istioctl reads the sidecar's own config dump through a port-forward to Envoy's admin port.
        apply("remote", [port_forward(pod, SAMPLE_NAMESPACE, address, (15000,))])
        _start_sidecar(pod, address, istiods[index % len(istiods)])


def _start_sidecar(pod: str, address: str, istiod: str) -> None:
    envoy_binary = Path(envoy.__file__).parent / "_bin" / "envoy"
    bootstrap = STATE / f"envoy-{pod}.json"
    bootstrap.write_text(json.dumps(_bootstrap(pod, address, istiod)))
    procs.start(f"envoy-{pod}", [envoy_binary, "-c", bootstrap, "--concurrency", "1", "--disable-hot-restart", "--log-level", "warning"])
    log(f"started Envoy for {SAMPLE_NAMESPACE}/{pod} on {address}, connected to istiod at {istiod}")


def move_istiod(index: int, address: str, sidecars: list[str]) -> None:
    """istiod replica `index`, whose pod was recreated at another address (kwok gives the next free one), run there;
    its sidecars connect to it again there, as they would through istiod's Service."""
    name = f"istiod-{index}"
    procs.stop(name)
    apply("external", [port_forward(name, ISTIO_NAMESPACE, address, ISTIOD_PORTS)])
    start_istiod(index, address, context_kubeconfig("remote"), mesh_config())
    for pod in sidecars:
        procs.stop(f"envoy-{pod}")
        _start_sidecar(pod, wait_pod_ip("remote", SAMPLE_NAMESPACE, pod), address)


def up(istiods: int, proxies: int) -> None:
    _install_remote()
    addresses = _start_istiods(istiods)
    _start_sidecars(proxies, addresses)
