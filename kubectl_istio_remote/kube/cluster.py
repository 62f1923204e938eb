"""One pinned kubeconfig context, and the generic verbs that every Kubernetes request of the plugin goes through."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any

from kubectl_istio_remote import __version__
from kubectl_istio_remote.errors import UsageError, UserError
from kubectl_istio_remote.istio import API_REQUEST_SECONDS
from kubectl_istio_remote.kube.api_errors import Action, ApiError, UnreachableError, server_message
from kubectl_istio_remote.kube.kinds import POD, SELF_SUBJECT_REVIEW, Kind
from kubectl_istio_remote.kube.kubeconfig import in_cluster, load
from kubectl_istio_remote.kube.overrides import NO_FLAGS, ConnectionFlags
from kubectl_istio_remote.kube.transport import Timeout, Transport

#: An object as the API server sends it: its JSON, parsed.
Object = dict[str, Any]
#: Seconds to connect to an API server (a watch's or a port-forward's connection).
CONNECT_SECONDS = 10.0
#: How the API servers' logs tell our requests from others'; `serve` adds its own name.
USER_AGENT = f"kubectl-istio-remote/{__version__}"
SERVE_USER_AGENT = f"kubectl-istio-remote-serve/{__version__}"
#: Only these fields of a patch are ours to set; strategic merge keeps everything else of the object.
MERGE_PATCH = "application/strategic-merge-patch+json"


def transport_for(
    kubeconfig: str | None,
    context: str | None = None,
    *,
    in_cluster_first: bool = False,
    user_agent: str = USER_AGENT,
    flags: ConnectionFlags = NO_FLAGS,
) -> Transport:
    """Requests to one context of the kubeconfig (default: its current one); `in_cluster_first` suits the aggregator pod."""
    if in_cluster_first and (endpoint := in_cluster()) is not None:
        return Transport(endpoint, user_agent)
    config = load(kubeconfig)
    return Transport(config.endpoint(context or config.current, flags), user_agent)


@dataclass(frozen=True)
class Cluster:
    """One pinned kubeconfig context: a later `kubectl config use-context` cannot redirect us, or our teardown."""

    context: str
    kubeconfig: str | None
    transport: Transport

    @property
    def host(self) -> str:
        return self.transport.host

    def action(self, verb: str, kind: Kind, namespace: str = "", name: str = "", subresource: str = "") -> Action:
        resource = f"{kind.plural}/{subresource}" if subresource else kind.plural
        impersonated = self.transport.endpoint.impersonated
        return Action(verb, resource, namespace if kind.namespaced else "", self.context, self.host, name, impersonated)

    def create(self, kind: Kind, namespace: str, body: Object, *, name: str = "", subresource: str = "") -> Object:
        action = self.action("create", kind, namespace, name, subresource)
        return self.request("POST", kind.path(namespace, name, subresource), action, body=body)

    def read(self, kind: Kind, namespace: str, name: str) -> Object:
        return self.request("GET", kind.path(namespace, name), self.action("get", kind, namespace, name))

    def list_objects(
        self, kind: Kind, namespace: str = "", *, labels: str = "", fields: str = "", timeout: Timeout = API_REQUEST_SECONDS
    ) -> Object:
        """The List object: `items`, and `metadata.resourceVersion` to watch from."""
        return self.request(
            "GET", kind.path(namespace), self.action("list", kind, namespace), query=_selectors(labels, fields), timeout=timeout
        )

    def patch(self, kind: Kind, namespace: str, name: str, body: Object) -> Object:
        action = self.action("patch", kind, namespace, name)
        return self.request("PATCH", kind.path(namespace, name), action, body=body, content_type=MERGE_PATCH)

    def delete(self, kind: Kind, namespace: str, name: str, *, timeout: Timeout = API_REQUEST_SECONDS) -> None:
        # Our pods hold no state worth a grace period; the rest have none.
        query = [("gracePeriodSeconds", "0")] if kind is POD else []
        self.request("DELETE", kind.path(namespace, name), self.action("delete", kind, namespace, name), query=query, timeout=timeout)

    def watch(
        self, kind: Kind, namespace: str, *, labels: str = "", fields: str = "", resource_version: str = "", seconds: int
    ) -> Iterator[tuple[str, Object]]:
        """(event type, object) until the server ends the watch after `seconds`; an ERROR event (410 Gone) raises ApiError."""
        action = self.action("watch", kind, namespace)
        query = [("watch", "true"), ("timeoutSeconds", str(seconds)), *_selectors(labels, fields)]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        try:
            with self.transport.stream(
                kind.path(namespace), query, {"Accept": "application/json"}, (CONNECT_SECONDS, seconds + 10.0)
            ) as response:
                if not 200 <= response.status <= 299:
                    raise ApiError(action, response.status, server_message(response.read(), response.reason))
                for line in response:
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        event = None
                    if not isinstance(event, dict) or not isinstance(event.get("object") or {}, dict):
                        raise UserError(
                            f"the API server of context {self.context} ({self.host}) sent a watch event that is not one "
                            f"({' '.join(line[:60].decode(errors='replace').split())!r})",
                            "is the server address right? something else than the API server answers there",
                        )
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(action, int(status.get("code") or 500), str(status.get("message") or "watch failed"))
                    yield str(event.get("type")), event.get("object") or {}
        except (OSError, HTTPException) as error:
            raise UnreachableError(action, error) from None

    def username(self) -> str:
        """Who the API server says we are (SelfSubjectReview), else the kubeconfig's user entry."""
        try:
            review = self.create(SELF_SUBJECT_REVIEW, "", {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
            return str(review.get("status", {}).get("userInfo", {}).get("username", ""))
        except ApiError:
            return load(self.kubeconfig).user_name(self.context)

    def request(
        self,
        method: str,
        path: str,
        action: Action,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Object | None = None,
        content_type: str = "application/json",
        timeout: Timeout = API_REQUEST_SECONDS,
    ) -> Any:
        """Send one request; any failure is raised as ApiError (the server said no) or UnreachableError (no answer)."""
        headers = {"Accept": "application/json", **({"Content-Type": content_type} if body is not None else {})}
        data = json.dumps(body).encode() if body is not None else None
        try:
            status, reason, answer = self.transport.request(method, path, query, headers, data, timeout)
        except (OSError, HTTPException) as error:
            raise UnreachableError(action, error) from None
        if not 200 <= status <= 299:
            raise ApiError(action, status, server_message(answer, reason or str(status)))
        try:
            decoded = json.loads(answer) if answer else {}
        except ValueError:
            decoded = None
        if not isinstance(decoded, dict):
            start = " ".join(answer[:60].decode(errors="replace").split())
            raise UserError(
                f"the API server of context {self.context} ({self.host}) answered {method} {path} with something that is not a "
                f"Kubernetes object ({start!r}...)",
                "is the server address right? a proxy or a login page in between answers instead of the API server",
            )
        return decoded


def _selectors(labels: str, fields: str) -> list[tuple[str, str]]:
    return [*([("labelSelector", labels)] if labels else []), *([("fieldSelector", fields)] if fields else [])]


def pin_clusters(flags: ConnectionFlags, external_context: str | None) -> tuple[Cluster, Cluster]:
    """Resolve the mesh context (default: current) and the external one (default: the same) once, at start.

    kubectl's flags apply to the mesh context; to a control-plane context of its own only who we act as
    (--as, --as-group, --as-uid) and --request-timeout: its server, user and certificates are its own.
    """
    kubeconfig = flags.kubeconfig
    config = load(kubeconfig)
    mesh = flags.context or config.current
    if not mesh:
        raise UserError("no current context in the kubeconfig", "pass --context")
    external = external_context or mesh
    for flag, name in (("--context", mesh), ("--external-context", external)):
        if name not in config.contexts:
            raise UsageError(f"unknown context {name!r} ({flag})", f"choose one of: {', '.join(config.names)}")
    mesh_cluster = Cluster(mesh, kubeconfig, Transport(config.endpoint(mesh, flags), USER_AGENT))
    if external == mesh:
        return mesh_cluster, mesh_cluster
    return mesh_cluster, Cluster(external, kubeconfig, Transport(config.endpoint(external, flags.for_another_context()), USER_AGENT))
