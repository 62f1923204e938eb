"""Three real Kubernetes control planes on loopback: etcd, kube-apiserver, kube-controller-manager, kwok.

`external` hosts the istiod pods (and our ephemeral proxy pods); `remote` is the mesh cluster istiod takes its
configuration from, `remote-2` a second mesh cluster registered with the same istiods by a remote secret.
Each cluster has one kwok node whose podCIDR is a loopback /24, so every pod gets a 127.x IP
where the sandbox can run that pod's real process; kwok's kubelet API serves port-forward.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client, config

from kubectl_istio_remote import IMAGE_REPOSITORY
from kubectl_istio_remote.deploy.install import NAME as INSTALL_NAME
from kubectl_istio_remote.kube.cluster import Cluster, transport_for
from kubectl_istio_remote.kube.labels import MANAGED_BY
from tests.sandbox import build, procs
from tests.sandbox.paths import STATE, log
from tests.sandbox.pki import Authority

KUBECONFIG = STATE / "kubeconfig"
PKI = STATE / "pki"
LIMITED_USER = "limited-user"


@dataclass(frozen=True)
class ClusterSpec:
    """Fixed loopback layout of one sandbox cluster."""

    name: str
    apiserver_port: int
    kwok_port: int
    pod_cidr: str
    service_cidr: str

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


ETCD_PORT = 23790
CLUSTERS = (
    ClusterSpec("external", 26443, 20250, "127.0.1.0/24", "10.96.0.0/16"),
    ClusterSpec("remote", 26444, 20251, "127.0.2.0/24", "10.97.0.0/16"),
    ClusterSpec("remote-2", 26445, 20252, "127.0.3.0/24", "10.98.0.0/16"),
)


def cluster(name: str) -> ClusterSpec:
    return next(spec for spec in CLUSTERS if spec.name == name)


def api(context: str) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(KUBECONFIG), context=context)


def pinned(context: str) -> Cluster:
    """The plugin's own adapter pinned to a sandbox context: tests look at clusters through the kinds it declares."""
    return Cluster(context, str(KUBECONFIG), transport_for(str(KUBECONFIG), context))


def _etcd() -> None:
    etcd = build.binary("etcd")
    data = STATE / "etcd"
    procs.start(
        "etcd",
        [
            etcd,
            "--data-dir",
            data,
            "--listen-client-urls",
            f"http://127.0.0.1:{ETCD_PORT}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{ETCD_PORT}",
            "--listen-peer-urls",
            "http://127.0.0.1:23800",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:23800",
            "--initial-cluster",
            "default=http://127.0.0.1:23800",
            "--unsafe-no-fsync",
        ],
    )
    procs.wait_until("etcd", lambda: procs.port_open("127.0.0.1", ETCD_PORT), 30, process="etcd")


def _apiserver(spec: ClusterSpec, ca: Authority) -> None:
    cert, key = ca.issue(f"{spec.name}-apiserver", "kube-apiserver", server=True)
    signing = ca.signing_key(f"{spec.name}-service-accounts")
    kubelet_cert, kubelet_key = ca.issue(
        f"{spec.name}-apiserver-kubelet-client", "kube-apiserver-kubelet-client", groups=("system:masters",)
    )
    procs.start(
        f"{spec.name}-apiserver",
        [
            build.binary("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            f"--etcd-prefix=/{spec.name}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # loopback may not be a kubernetes Service endpoint
            f"--secure-port={spec.apiserver_port}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            f"--client-ca-file={ca.cert_path}",
            f"--service-account-key-file={signing}",
            f"--service-account-signing-key-file={signing}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={spec.service_cidr}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={kubelet_cert}",
            f"--kubelet-client-key={kubelet_key}",
            "--allow-privileged=true",
            "--profiling=false",
            # Every request, with its user agent: bench/network.py counts the plugin's and istioctl's.
            f"--audit-policy-file={_audit_policy()}",
            f"--audit-log-path={audit_log(spec.name)}",
            "--audit-log-format=json",
        ],
    )


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
- level: Metadata
"""


def audit_log(name: str) -> Path:
    return STATE / "audit" / f"{name}.log"


def _audit_policy() -> Path:
    path = STATE / "audit" / "policy.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(AUDIT_POLICY)
    return path


def _controller_manager(spec: ClusterSpec, ca: Authority) -> None:
    """Garbage collection (ownerReferences), namespace deletion and default ServiceAccounts."""
    procs.start(
        f"{spec.name}-controller-manager",
        [
            build.binary("kube-controller-manager"),
            f"--kubeconfig={context_kubeconfig(spec.name)}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--controllers=*,-node-ipam-controller",
            f"--root-ca-file={ca.cert_path}",
            f"--service-account-private-key-file={ca.signing_key(f'{spec.name}-service-accounts')}",
            "--use-service-account-credentials=false",
        ],
    )


KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat/node-heartbeat.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def _kwok_module() -> Path:
    return Path(json.loads(build.go_module_info("sigs.k8s.io/kwok", build.KWOK_VERSION))["Dir"])


((MANAGED_BY_KEY, MANAGED_BY_VALUE),) = MANAGED_BY.items()
#: Pods the pod runner runs (podrunner._is_ours, in kwok's template language): the plugin's by their labels, and any of our image.
HELD = (
    f'{{{{ $held := or (eq (dig "metadata" "labels" "{MANAGED_BY_KEY}" "" .) "{MANAGED_BY_VALUE}")'
    f' (eq (dig "metadata" "labels" "app.kubernetes.io/name" "" .) "{INSTALL_NAME}") }}}}'
    f'{{{{ range .spec.containers }}}}{{{{ if or .readinessProbe (hasPrefix "{IMAGE_REPOSITORY}" .image) }}}}'
    "{{ $held = true }}{{ end }}{{ end }}"
)
#: kwok's pod-ready stage marks every container ready at once; a pod the pod runner runs, or one with a readinessProbe,
#: is left not ready, for the runner to mark (probes.py) once its container runs and its probe passes, as a kubelet would.
READY_BY_PROBE = (
    ("type: Initialized\n", f"type: Initialized\n      {HELD}\n"),
    ('status: "True"\n        type: Ready\n', 'status: {{ if $held }}"False"{{ else }}"True"{{ end }}\n        type: Ready\n'),
    (
        'status: "True"\n        type: ContainersReady\n',
        'status: {{ if $held }}"False"{{ else }}"True"{{ end }}\n        type: ContainersReady\n',
    ),
    (
        "name: {{ .name | Quote }}\n        ready: true\n        restartCount: 0\n        state:",
        "name: {{ .name | Quote }}\n        ready: {{ if $held }}false{{ else }}true{{ end }}\n        restartCount: 0\n        state:",
    ),
)


def _kwok_config() -> Path:
    """kwok's own default stages: nodes become Ready, pods Running with an IP (Ready unless a probe must say so), deleted pods go."""
    path = STATE / "kwok.yaml"
    stages = _kwok_module() / "kustomize" / "stage"
    documents = [(stages / name).read_text() for name in KWOK_STAGES]
    ready = KWOK_STAGES.index("pod/fast/pod-ready.yaml")
    for old, new in READY_BY_PROBE:
        if documents[ready].count(old) != 1:
            raise RuntimeError(f"kwok's pod-ready stage changed ({old!r} not found once): update READY_BY_PROBE")
        documents[ready] = documents[ready].replace(old, new)
    path.write_text("\n---\n".join(documents))
    return path


def _scheduler(spec: ClusterSpec) -> None:
    """kwok only plays the kubelet: pods still need a real scheduler to land on its node."""
    procs.start(
        f"{spec.name}-scheduler",
        [
            build.binary("kube-scheduler"),
            f"--kubeconfig={context_kubeconfig(spec.name)}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        ],
    )


def _kwok(spec: ClusterSpec, ca: Authority) -> None:
    cert, key = ca.issue(f"{spec.name}-kwok", "kwok", server=True)
    procs.start(
        f"{spec.name}-kwok",
        [
            build.binary("kwok"),
            f"--kubeconfig={context_kubeconfig(spec.name)}",
            f"--config={_kwok_config()}",
            "--manage-all-nodes=true",
            "--node-ip=127.0.0.1",
            f"--node-port={spec.kwok_port}",
            f"--server-address=127.0.0.1:{spec.kwok_port}",
            f"--tls-cert-file={cert}",
            f"--tls-private-key-file={key}",
            "--enable-crds=PortForward",
            # A node Lease renewed every ~10 s, as kubelets keep: with only kwok's 20-45 s status
            # heartbeat, a short API server outage gets the node marked NotReady, and kwok's
            # re-initialization then drops its addresses, which port-forward needs.
            "--node-lease-duration-seconds=40",
        ],
    )


def context_kubeconfig(context: str) -> Path:
    """A copy of the kubeconfig whose current context is `context`, for programs without --context."""
    path = STATE / f"{context}.kubeconfig"
    document = yaml.safe_load(KUBECONFIG.read_text())
    document["current-context"] = context
    # Replaced, never rewritten in place: a component started a moment ago may be reading it (an
    # empty read once made kube-controller-manager exit with "no configuration has been provided").
    partial = path.with_suffix(f".partial-{os.getpid()}")
    partial.write_text(yaml.safe_dump(document))
    partial.replace(path)
    return path


def _write_kubeconfig(ca: Authority) -> None:
    users, contexts = [], []
    admin_cert, admin_key = ca.issue("admin", "sandbox-admin", groups=("system:masters",))
    limited_cert, limited_key = ca.issue("limited", LIMITED_USER)
    for spec in CLUSTERS:
        users.append({"name": f"{spec.name}-admin", "user": {"client-certificate": str(admin_cert), "client-key": str(admin_key)}})
        users.append({"name": f"{spec.name}-limited", "user": {"client-certificate": str(limited_cert), "client-key": str(limited_key)}})
        contexts.append({"name": spec.name, "context": {"cluster": spec.name, "user": f"{spec.name}-admin"}})
        contexts.append({"name": f"{spec.name}-limited", "context": {"cluster": spec.name, "user": f"{spec.name}-limited"}})
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": spec.name, "cluster": {"server": spec.server, "certificate-authority": str(ca.cert_path)}} for spec in CLUSTERS
        ],
        "users": users,
        "contexts": contexts,
        "current-context": "remote",
    }
    KUBECONFIG.write_text(yaml.safe_dump(document))


def _wait_ready(spec: ClusterSpec) -> None:
    def healthy() -> bool:
        try:
            with api(spec.name) as api_client:
                client.VersionApi(api_client).get_code()
                return bool(client.CoreV1Api(api_client).read_namespace("default"))
        except Exception:
            return False

    procs.wait_until(f"{spec.name} API server", healthy, 90, process=f"{spec.name}-apiserver")


def kwok_crds() -> list[dict]:
    return [yaml.safe_load((_kwok_module() / "kustomize/crd/bases/kwok.x-k8s.io_portforwards.yaml").read_text())]


def apply(context: str, documents: list[dict]) -> None:
    """Create-or-replace, enough for the handful of kinds the sandbox installs."""
    from kubernetes import dynamic

    with api(context) as api_client:
        dyn = dynamic.DynamicClient(api_client)
        for document in documents:
            resource = dyn.resources.get(api_version=document["apiVersion"], kind=document["kind"])
            namespace = document["metadata"].get("namespace")
            try:
                dyn.server_side_apply(resource, body=document, namespace=namespace, field_manager="sandbox", force_conflicts=True)
            except Exception as error:
                raise procs.SandboxError(f"applying {document['kind']}/{document['metadata']['name']} in {context}: {error}") from error


def _node(spec: ClusterSpec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"{spec.name}-node",
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": f"{spec.name}-node", "type": "kwok"},
        },
        "spec": {"podCIDR": spec.pod_cidr, "podCIDRs": [spec.pod_cidr]},
    }


def _wait_crd(spec: ClusterSpec, name: str) -> None:
    def established() -> bool:
        with api(spec.name) as api_client:
            try:
                crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition(name)
            except client.ApiException:
                return False
            return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    procs.wait_until(f"CRD {name} in {spec.name}", established, 30)


def _wait_node_ready(spec: ClusterSpec) -> None:
    def ready() -> bool:
        with api(spec.name) as api_client:
            try:
                node = client.CoreV1Api(api_client).read_node(f"{spec.name}-node")
            except client.ApiException:
                return False
            return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    procs.wait_until(f"node of {spec.name}", ready, 60, process=f"{spec.name}-kwok")


#: The components that watch each API server, paused while it is down (see stop_apiserver).
WATCHERS = ("controller-manager", "scheduler", "kwok")


def stop_apiserver(name: str) -> None:
    """Stop one cluster's kube-apiserver (a fault under test), pausing the components that watch it.

    Left running through an outage, their client-go backoff leaves new pods Pending and port-forwards
    failing (kwok serves them from an informer) for up to a minute after the API server is back, and
    kwok restarted would hand out pod IPs still in use. Paused, they meet one broken connection
    instead of many refused ones, and reconnect within seconds when resumed.
    """
    for component in WATCHERS:
        os.killpg(procs.recorded_pid(f"{name}-{component}"), signal.SIGSTOP)
    procs.stop(f"{name}-apiserver")


def start_apiserver(name: str) -> None:
    """Start it again with the same certificates and flags, wait until it answers, and resume its watchers."""
    spec = cluster(name)
    _apiserver(spec, Authority(PKI))
    _wait_ready(spec)
    for component in WATCHERS:
        os.killpg(procs.recorded_pid(f"{name}-{component}"), signal.SIGCONT)


def up() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    ca = Authority(PKI)
    _write_kubeconfig(ca)
    log("starting etcd")
    _etcd()
    for spec in CLUSTERS:
        log(f"starting {spec.name} kube-apiserver on {spec.server}")
        _apiserver(spec, ca)
    for spec in CLUSTERS:
        _wait_ready(spec)
        apply(spec.name, kwok_crds())
        _wait_crd(spec, "portforwards.kwok.x-k8s.io")
        _controller_manager(spec, ca)
        _scheduler(spec)
        _kwok(spec, ca)
        apply(spec.name, [_node(spec)])
    for spec in CLUSTERS:
        _wait_node_ready(spec)
    log(f"clusters {', '.join(spec.name for spec in CLUSTERS)} are ready")
