"""What an operator applies to the mesh cluster so that mesh users find the shared aggregator by themselves.

A ConfigMap in the istio namespace says where the aggregator is and which CA signs its serving
certificate; a Role and RoleBinding let every authenticated user of the mesh cluster read that one
ConfigMap (by name), nothing more. Mesh users need no right in the control-plane cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubectl_istio_remote.errors import UsageError
from kubectl_istio_remote.kube.kinds import RBAC_GROUP

CONFIGMAP_NAME = "istio-remote-aggregator"
ADDRESS_KEY = "address"
CA_KEY = "ca.crt"
EVERY_AUTHENTICATED_USER = {"apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:authenticated"}


@dataclass(frozen=True)
class Advertisement:
    namespace: str
    #: HOST:PORT mesh users dial (a LoadBalancer's address, the gateway's host and port, ...).
    address: str
    #: PEM of the CA that signs the aggregator's serving certificate ("" when a public CA does).
    ca_pem: str = ""
    version: str = ""


def objects(advertisement: Advertisement) -> list[dict[str, Any]]:
    metadata = {
        "name": CONFIGMAP_NAME,
        "namespace": advertisement.namespace,
        "labels": {"app.kubernetes.io/name": CONFIGMAP_NAME, "app.kubernetes.io/version": advertisement.version},
    }
    data = {ADDRESS_KEY: advertisement.address, **({CA_KEY: advertisement.ca_pem} if advertisement.ca_pem else {})}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data},
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "Role",
            "metadata": metadata,
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CONFIGMAP_NAME], "verbs": ["get"]}],
        },
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": CONFIGMAP_NAME},
            "subjects": [EVERY_AUTHENTICATED_USER],
        },
    ]


def checked_address(address: str | None) -> str:
    """HOST:PORT, or a usage error saying what was wrong."""
    if not address:
        raise UsageError("--mesh advertises an aggregator's address", "add --address HOST:PORT, where mesh users reach it")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} is not HOST:PORT", "for example --address xds.example.com:15012")
    return address


def read_ca(path: str | None) -> str:
    """The CA file's PEM, or "" without one; a file that is not a PEM certificate is a usage error."""
    if path is None:
        return ""
    try:
        with open(path, encoding="ascii") as handle:
            pem = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read --ca-file {path}: {getattr(error, 'strerror', None) or error}", "give the CA's PEM file") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise UsageError(f"--ca-file {path} holds no PEM certificate", "give the CA that signs the aggregator's serving certificate")
    return pem
