"""The permanent install `manifest` prints, checked before any cluster sees it (the sandbox applies it for real)."""

from __future__ import annotations

import yaml

from kubectl_istio_remote.status import ExitStatus
from tests.cli_runner import run_cli


def manifest(*args: str) -> dict[str, dict]:
    result = run_cli("manifest", *args)
    assert result.exit_code == ExitStatus.SUCCESS, result.stderr
    assert "&id" not in result.stdout, "plain YAML an operator can read and diff, without anchors"
    return {document["kind"]: document for document in yaml.safe_load_all(result.stdout)}


def test_default_install_has_every_object_an_operator_needs_and_no_key_material() -> None:
    objects = manifest("-n", "external-istiod")
    assert set(objects) == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
    assert all(body["metadata"]["namespace"] == "external-istiod" for body in objects.values())
    assert "PRIVATE KEY" not in yaml.safe_dump_all(objects.values())
    assert objects["Service"]["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_deployment_is_restricted_probed_bounded_and_serves_tls_from_the_secret() -> None:
    spec = manifest("--tls-secret", "proxy-cert")["Deployment"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 65532
    container = spec["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "readinessProbe" in container and "livenessProbe" in container
    assert container["resources"]["limits"]["memory"]
    args = container["args"]
    assert args[args.index("--listen") + 1] == "0.0.0.0:15012", "a Service reaches the pod IP"
    mount = container["volumeMounts"][0]["mountPath"]
    assert args[args.index("--tls-cert") + 1] == f"{mount}/tls.crt"
    assert spec["volumes"][0]["secret"]["secretName"] == "proxy-cert"


def test_role_only_reads_pods_and_the_pods_are_not_meshed() -> None:
    objects = manifest()
    assert objects["Role"]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    assert objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"


def test_loadbalancer_exposure_changes_only_the_service_type() -> None:
    assert manifest("--expose", "loadbalancer")["Service"]["spec"]["type"] == "LoadBalancer"


def test_gateway_exposure_routes_tls_passthrough_by_server_name() -> None:
    objects = manifest("--expose", "gateway", "--host", "xds.example.com", "-n", "external-istiod")
    server = objects["Gateway"]["spec"]["servers"][0]
    assert server["tls"] == {"mode": "PASSTHROUGH"} and server["hosts"] == ["xds.example.com"]
    route = objects["VirtualService"]["spec"]["tls"][0]
    assert route["match"][0]["sniHosts"] == ["xds.example.com"]
    assert route["route"][0]["destination"]["host"] == "istio-remote-proxy.external-istiod.svc.cluster.local"
    assert objects["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["podSelector"] == {"matchLabels": {"istio": "ingressgateway"}}


def test_cert_manager_issues_the_secret_the_deployment_mounts() -> None:
    objects = manifest("--issuer", "ClusterIssuer/internal-ca", "-n", "external-istiod")
    certificate = objects["Certificate"]["spec"]
    assert certificate["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "internal-ca"}
    assert "istio-remote-proxy.external-istiod.svc" in certificate["dnsNames"]
    assert objects["Deployment"]["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == certificate["secretName"]


def test_gateway_without_host_is_a_usage_error() -> None:
    result = run_cli("manifest", "--expose", "gateway")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stdout == ""
    assert "--host" in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- `manifest --mesh`: what the mesh cluster needs to advertise the shared aggregator -------------


def test_the_mesh_side_is_one_configmap_readable_by_every_authenticated_user_and_nothing_more(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    objects = manifest("--mesh", "-i", "external-istiod", "--address", "xds.example.com:15012", "--ca-file", str(ca))
    assert set(objects) == {"ConfigMap", "Role", "RoleBinding"}
    assert all(body["metadata"]["namespace"] == "external-istiod" for body in objects.values())
    assert objects["ConfigMap"]["data"] == {"address": "xds.example.com:15012", "ca.crt": ca.read_text()}
    assert objects["Role"]["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["istio-remote-aggregator"], "verbs": ["get"]}
    ]
    assert objects["RoleBinding"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}
    ]
    assert objects["RoleBinding"]["roleRef"]["name"] == objects["Role"]["metadata"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert "app.kubernetes.io/managed-by" not in objects["ConfigMap"]["metadata"]["labels"], "cleanup must never take it for a session's"


def test_without_a_ca_file_the_configmap_holds_the_address_only() -> None:
    assert manifest("--mesh", "--address", "10.0.0.9:15012")["ConfigMap"]["data"] == {"address": "10.0.0.9:15012"}


def test_mesh_mistakes_are_one_line_with_the_next_step(tmp_path) -> None:
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello")
    for args, words in (
        (["--mesh"], "add --address HOST:PORT"),
        (["--mesh", "--address", "nonsense"], "is not HOST:PORT"),
        (["--mesh", "--address", "h:99999"], "is not HOST:PORT"),
        (["--mesh", "--address", "h:15012", "--ca-file", str(tmp_path / "missing.pem")], "cannot read --ca-file"),
        (["--mesh", "--address", "h:15012", "--ca-file", str(not_pem)], "holds no PEM certificate"),
    ):
        result = run_cli("manifest", *args)
        assert result.exit_code == ExitStatus.USAGE, args
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr


def test_metrics_are_a_named_port_prometheus_finds_and_may_reach() -> None:
    objects = manifest("-n", "external-istiod")
    template = objects["Deployment"]["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert {"name": "http-monitoring", "containerPort": 15014, "protocol": "TCP"} in container["ports"]
    assert container["args"][container["args"].index("--metrics-listen") + 1] == "0.0.0.0:15014"
    annotations = template["metadata"]["annotations"]
    assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (
        "true",
        "15014",
        "/metrics",
    )
    assert {"name": "http-monitoring", "port": 15014, "targetPort": "http-monitoring", "protocol": "TCP"} in objects["Service"]["spec"][
        "ports"
    ]
    assert {"ports": [{"port": 15014, "protocol": "TCP"}]} in objects["NetworkPolicy"]["spec"]["ingress"]
    assert "ServiceMonitor" not in objects


def test_service_monitor_scrapes_the_services_metrics_port() -> None:
    objects = manifest("-n", "external-istiod", "--service-monitor")
    monitor = objects["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"] == objects["Service"]["spec"]["selector"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["external-istiod"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in objects["Service"]["spec"]["ports"]} and endpoint["path"] == "/metrics"


def test_image_pull_secrets_reach_the_deployment() -> None:
    spec = manifest("--image-pull-secret", "mirror")["Deployment"]["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "mirror"}]
