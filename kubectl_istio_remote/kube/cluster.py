"""One pinned kubeconfig context, and the generic verbs that every Kubernetes request of the plugin goes through."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubectl_istio_remote import __version__
from kubectl_istio_remote.errors import UsageError, UserError
from kubectl_istio_remote.istio import API_REQUEST_SECONDS
from kubectl_istio_remote.kube.errors import Action, ApiError, UnreachableError, server_message
from kubectl_istio_remote.kube.kinds import POD, SELF_SUBJECT_REVIEW, Kind

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from kubernetes.stream.ws_client import PortForward

#: An object as the API server sends it: its JSON, parsed.
Object = dict[str, Any]
Timeout = float | tuple[float, float | None]
CONNECT_SECONDS = 10.0
#: How the API servers' logs tell our requests from others'; `serve` adds its own name.
USER_AGENT = f"kubectl-istio-remote/{__version__}"
SERVE_USER_AGENT = f"kubectl-istio-remote-serve/{__version__}"
#: Only these fields of a patch are ours to set; strategic merge keeps everything else of the object.
MERGE_PATCH = "application/strategic-merge-patch+json"


def api_client(
    kubeconfig: str | None = None, context: str | None = None, *, in_cluster_first: bool = False, user_agent: str = USER_AGENT
) -> ApiClient:
    """A client for one context of the kubeconfig; `in_cluster_first` suits the aggregator pod."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if in_cluster_first:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return _client(configuration, user_agent)
        except config.ConfigException:
            pass
    try:
        with credential_plugin_failures() as failures:
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, FileNotFoundError) as error:
        raise UserError(f"cannot load kubeconfig: {error}", "check --kubeconfig, KUBECONFIG and --context") from None
    if failures:
        raise UserError(
            f"the credential plugin of context {context or '(current)'} failed: {failures[0]}",
            "log in again as the plugin's message says, or check that context's user in your kubeconfig",
        )
    return _client(configuration, user_agent)


def _client(configuration: Any, user_agent: str) -> ApiClient:
    from kubernetes import client

    api = client.ApiClient(configuration)
    api.user_agent = user_agent
    return api


@contextlib.contextmanager
def credential_plugin_failures() -> Iterator[list[str]]:
    """What the client's kubeconfig loader logged as errors while it ran an exec credential plugin.

    The loader logs a failed plugin and carries on without credentials, so the user would meet an
    anonymous 403 and be sent to fix RBAC; this turns the logged failure into the error instead,
    and keeps the loader's log lines off the terminal.
    """
    failures: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR and f"kubernetes{os.sep}config" in record.pathname:
                failures.append(_plugin_message(record.getMessage()))

    handler = Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield failures
    finally:
        root.removeHandler(handler)


def _plugin_message(logged: str) -> str:
    """`exec: process returned 1. login required` -> `exit 1: login required`: the plugin's own words, on one line."""
    match = re.match(r"exec: process returned (\d+)\.?\s*(.*)", logged, re.DOTALL)
    text = f"exit {match[1]}: {match[2]}" if match else logged.removeprefix("exec: ")
    return re.sub(r"\s+", " ", text).strip().rstrip(":")


@dataclass(frozen=True)
class Cluster:
    """One pinned kubeconfig context: a later `kubectl config use-context` cannot redirect us, or our teardown."""

    context: str
    kubeconfig: str | None
    api: ApiClient

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def action(self, verb: str, kind: Kind, namespace: str = "", name: str = "", subresource: str = "") -> Action:
        resource = f"{kind.plural}/{subresource}" if subresource else kind.plural
        return Action(verb, resource, namespace if kind.namespaced else "", self.context, self.host, name)

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
        import urllib3
        from kubernetes.watch.watch import iter_resp_lines

        action = self.action("watch", kind, namespace)
        query = [("watch", "true"), ("timeoutSeconds", str(seconds)), *_selectors(labels, fields)]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self.request("GET", kind.path(namespace), action, query=query, timeout=(CONNECT_SECONDS, seconds + 10.0), stream=True)
        try:
            for line in iter_resp_lines(response):
                if not line:
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiError(action, int(status.get("code") or 500), str(status.get("message") or "watch failed"))
                yield str(event.get("type")), event.get("object") or {}
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise UnreachableError(action, error) from None
        finally:
            response.release_conn()

    def port_forward(self, namespace: str, pod: str, port: int) -> PortForward:
        """A websocket port-forward of its own: nothing shared with other requests (the client's helper patches its ApiClient)."""
        from kubernetes.stream.ws_client import portforward_call

        path = POD.path(namespace, pod, "portforward")
        _, url, headers, _, _ = self.api.param_serialize("GET", path, query_params=[("ports", str(port))], auth_settings=["BearerToken"])
        return portforward_call(self.api.configuration, "GET", url, headers=headers, _preload_content=False)

    def username(self) -> str:
        """Who the API server says we are (SelfSubjectReview), else the kubeconfig's user entry."""
        try:
            review = self.create(SELF_SUBJECT_REVIEW, "", {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
            return str(review.get("status", {}).get("userInfo", {}).get("username", ""))
        except ApiError:
            from kubernetes import config

            contexts, _ = config.list_kube_config_contexts(self.kubeconfig)
            entry = next(entry for entry in contexts if entry["name"] == self.context)
            return str(entry["context"].get("user", ""))

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
        stream: bool = False,
    ) -> Any:
        """Send one request; any failure is raised as ApiError (the server said no) or UnreachableError (no answer)."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json", **({"Content-Type": content_type} if body is not None else {})}
        method, url, headers, serialized, _ = self.api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            response = self.api.call_api(method, url, headers, serialized, _request_timeout=timeout)
        except ApiException as error:  # status 0: TLS failed; else a retried 429 that stayed one
            if error.status:
                raise ApiError(action, error.status, server_message(error.body, error.reason or "")) from None
            raise UnreachableError(action, error) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise UnreachableError(action, error) from None
        if not 200 <= response.status <= 299:
            raise ApiError(action, response.status, server_message(response.read(), response.reason or str(response.status)))
        if stream:
            return response.response
        data = response.read()
        return json.loads(data) if data else {}


def _selectors(labels: str, fields: str) -> list[tuple[str, str]]:
    return [*([("labelSelector", labels)] if labels else []), *([("fieldSelector", fields)] if fields else [])]


def pin_clusters(kubeconfig: str | None, context: str | None, external_context: str | None) -> tuple[Cluster, Cluster]:
    """Resolve the mesh context (default: current) and the external one (default: the same) once, at start."""
    from kubernetes import config

    try:
        contexts, current = config.list_kube_config_contexts(kubeconfig)
    except (config.ConfigException, FileNotFoundError) as error:
        raise UserError(f"cannot load kubeconfig: {error}", "check --kubeconfig and KUBECONFIG") from None
    names = [entry["name"] for entry in contexts]
    mesh = context or (current or {}).get("name")
    if not mesh:
        raise UserError("no current context in the kubeconfig", "pass --context")
    external = external_context or mesh
    for flag, name in (("--context", mesh), ("--external-context", external)):
        if name not in names:
            raise UsageError(f"unknown context {name!r} ({flag})", f"choose one of: {', '.join(names)}")
    mesh_cluster = Cluster(mesh, kubeconfig, api_client(kubeconfig, mesh))
    external_cluster = mesh_cluster if external == mesh else Cluster(external, kubeconfig, api_client(kubeconfig, external))
    return mesh_cluster, external_cluster
