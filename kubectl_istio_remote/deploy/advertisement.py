"""What an operator applies to the mesh cluster so that mesh users find the shared aggregator by themselves.

A ConfigMap in the istio namespace says where the aggregator is and which CA signs its serving
certificate; a Role and RoleBinding let every authenticated user of the mesh cluster read that one
ConfigMap (by name), nothing more. Mesh users need no right in the control-plane cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubectl_istio_remote.errors import UsageError, UserError
from kubectl_istio_remote.kube.kinds import CONFIG_MAP, RBAC_GROUP, ROLE, ROLE_BINDING
from kubectl_istio_remote.relay import Target

CONFIGMAP_NAME = "istio-remote-aggregator"
ADDRESS_KEY = "address"
CA_KEY = "ca.crt"
#: The name the serving certificate is issued for, when the address's host is not one of its names (an IP, say).
SERVER_NAME_KEY = "server-name"
#: The mesh cluster's Istio cluster ID, when it is not istiod's config cluster: mesh users' tokens are reviewed in it.
CLUSTER_ID_KEY = "cluster-id"
EVERY_AUTHENTICATED_USER = {"apiGroup": RBAC_GROUP, "kind": "Group", "name": "system:authenticated"}
PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class Advertisement:
    namespace: str
    #: HOST:PORT mesh users dial (a LoadBalancer's address, the gateway's host and port, ...).
    address: str
    #: PEM of the CA that signs the aggregator's serving certificate ("" when a public CA does).
    ca_pem: str = ""
    #: The name verified against the serving certificate ("": the address's host).
    server_name: str = ""
    version: str = ""
    #: The Istio cluster ID of the mesh cluster that advertises it ("": istiod's config cluster).
    cluster_id: str = ""
    #: Where it was read, for messages: "ConfigMap NS/NAME of context C", or "--aggregator".
    source: str = ""

    @property
    def verified_name(self) -> str:
        return self.server_name or self.address.rpartition(":")[0].strip("[]")

    @property
    def target(self) -> Target:
        """The aggregator as a relay dials it: its address, and the name its certificate is verified for (and SNI)."""
        host, _, port = self.address.rpartition(":")
        return Target(self.address, host.strip("[]"), int(port), self.verified_name)

    @property
    def trusted(self) -> str:
        """What its certificate is verified against, for messages."""
        return "the advertised CA" if self.ca_pem else "the system's trust roots"


def objects(advertisement: Advertisement) -> list[dict[str, Any]]:
    metadata = {
        "name": CONFIGMAP_NAME,
        "namespace": advertisement.namespace,
        "labels": {"app.kubernetes.io/name": CONFIGMAP_NAME, "app.kubernetes.io/version": advertisement.version},
    }
    data = {ADDRESS_KEY: advertisement.address}
    optional = ((CA_KEY, advertisement.ca_pem), (SERVER_NAME_KEY, advertisement.server_name), (CLUSTER_ID_KEY, advertisement.cluster_id))
    data.update({key: value for key, value in optional if value})
    return [
        CONFIG_MAP.manifest(metadata, data=data),
        ROLE.manifest(
            metadata, rules=[{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CONFIGMAP_NAME], "verbs": ["get"]}]
        ),
        ROLE_BINDING.manifest(
            metadata, roleRef={"apiGroup": RBAC_GROUP, "kind": "Role", "name": CONFIGMAP_NAME}, subjects=[EVERY_AUTHENTICATED_USER]
        ),
    ]


def address_problem(address: str) -> str:
    """Why `address` is not HOST:PORT ("" when it is)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"{address!r} is not HOST:PORT"
    return ""


def checked_address(address: str | None, flag: str = "--address") -> str:
    """HOST:PORT, or a usage error saying what was wrong."""
    if not address:
        raise UsageError("--mesh advertises an aggregator's address", "add --address HOST:PORT, where mesh users reach it")
    if problem := address_problem(address):
        raise UsageError(f"{flag} {problem}", f"for example {flag} xds.example.com:15012")
    return address


def read_ca(path: str | None, flag: str = "--ca-file") -> str:
    """The CA file's PEM, or "" without one; a file that is not a PEM certificate is a usage error."""
    if path is None:
        return ""
    try:
        with open(path, encoding="ascii") as handle:
            pem = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {flag} {path}: {getattr(error, 'strerror', None) or error}", "give the CA's PEM file") from None
    if PEM_CERTIFICATE not in pem:
        raise UsageError(f"{flag} {path} holds no PEM certificate", "give the CA that signs the aggregator's serving certificate")
    return pem


def parse(configmap: dict[str, Any], source: str) -> Advertisement:
    """The advertisement a ConfigMap holds, or an error naming what is wrong with it and who fixes it."""
    data = configmap.get("data") or {}
    address, ca_pem = str(data.get(ADDRESS_KEY, "")).strip(), str(data.get(CA_KEY, ""))
    if problem := _data_problem(address, ca_pem):
        raise UserError(
            f"{source} is malformed: {problem}",
            "ask the mesh operator to apply `kubectl istio-remote manifest --mesh` again, or pass --aggregator HOST:PORT",
        )
    namespace = str((configmap.get("metadata") or {}).get("namespace", ""))
    server_name, cluster_id = (str(data.get(key, "")).strip() for key in (SERVER_NAME_KEY, CLUSTER_ID_KEY))
    return Advertisement(namespace, address, ca_pem, server_name, cluster_id=cluster_id, source=source)


def _data_problem(address: str, ca_pem: str) -> str:
    """What is wrong with an advertisement's data ("" when nothing is)."""
    if not address:
        return f"no {ADDRESS_KEY!r} key"
    if problem := address_problem(address):
        return problem
    return f"{CA_KEY!r} holds no PEM certificate" if ca_pem and PEM_CERTIFICATE not in ca_pem else ""
