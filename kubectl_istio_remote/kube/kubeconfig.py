"""The kubeconfig as kubectl reads it, and what one of its contexts needs to reach its API server.

KUBECONFIG's files are merged (the first file that names a cluster, user or context wins; missing
files are skipped), `--kubeconfig` names one file, and relative paths are read from the file that
holds them; with no kubeconfig at all, inside a pod, the pod's service account is used, as kubectl
falls back to it. Resolving a context applies kubectl's flags (overrides.py) and checks what
kubectl checks before it sends anything, refusing in its words. It gives an Endpoint: the server,
its TLS, its route (proxies.py) and the credential (credentials.py).
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from kubectl_istio_remote.errors import UsageError, UserError
from kubectl_istio_remote.kube.credentials import Credential, TokenFile, check_user, credential_for
from kubectl_istio_remote.kube.overrides import NO_FLAGS, ConnectionFlags
from kubectl_istio_remote.kube.proxies import Route, route
from kubectl_istio_remote.machine import verifying_context

Entry = dict[str, Any]
DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: The context name a pod's own service account goes by, in messages.
IN_CLUSTER = "in-cluster"
LOAD_HINT = "check --kubeconfig and KUBECONFIG"
#: Go's structs for each list of a kubeconfig, as its JSON decoder names them in errors.
NAMED = {"clusters": "NamedCluster", "users": "NamedAuthInfo", "contexts": "NamedContext"}
#: Characters a header name may hold; others are %-escaped in Impersonate-Extra-* names, as client-go does.
HEADER_NAME = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Endpoint:
    """Everything a request to one API server needs: where, over which TLS, through which proxy, as whom."""

    server: str
    #: The CA to verify the server against (None: the system's roots), and whether not to verify it.
    authority: bytes | None
    insecure: bool
    #: The kubeconfig's client certificate and key (PEM), if it has one.
    client: tuple[bytes, bytes] | None
    server_name: str | None
    route: Route
    credential: Credential
    #: Impersonate-User, -Group (repeated), -Uid and -Extra-* headers: who the requests act as (kubeconfig `as:`, --as).
    impersonation: tuple[tuple[str, str], ...] = ()
    #: --request-timeout in seconds; None: the plugin's own limit for each kind of request.
    request_seconds: float | None = None
    _contexts: dict[tuple[bytes, bytes] | None, ssl.SSLContext] = field(default_factory=dict, compare=False, repr=False)

    @property
    def impersonated(self) -> str:
        """The user the requests act as ("" without impersonation), for messages."""
        return next((value for name, value in self.impersonation if name == "Impersonate-User"), "")

    def tls(self) -> ssl.SSLContext:
        """The TLS context for a new connection: rebuilt when an exec plugin's client certificate changed."""
        pair = self.credential.client_pair() or self.client
        if pair not in self._contexts:
            self._contexts.clear()
            self._contexts[pair] = tls_context(self.authority, self.insecure, pair)
        return self._contexts[pair]


@dataclass(frozen=True)
class Kubeconfig:
    contexts: dict[str, Entry]
    clusters: dict[str, tuple[Entry, Path]]
    users: dict[str, tuple[Entry, Path]]
    current: str
    #: The pod's own service account, when there is no kubeconfig and this runs in a pod.
    in_cluster: Endpoint | None = None

    @property
    def names(self) -> list[str]:
        return list(self.contexts)

    def user_name(self, context: str) -> str:
        return str(self.contexts.get(context, {}).get("user", ""))

    def endpoint(self, context: str, flags: ConnectionFlags = NO_FLAGS) -> Endpoint:
        """The context's server, TLS and credentials, kubectl's flags applied; a credential plugin runs here, before any request."""
        if context == IN_CLUSTER and self.in_cluster is not None:
            return self.in_cluster
        entry = self.contexts.get(context)
        if entry is None:
            raise UsageError(f"unknown context {context!r}", f"choose one of: {', '.join(self.names)}")
        cluster_name, user_name = str(flags.cluster or entry.get("cluster")), str(flags.user or entry.get("user"))
        if flags.cluster and cluster_name not in self.clusters:
            raise UsageError(f'cluster "{cluster_name}" does not exist', "check --cluster")
        if flags.user and user_name not in self.users:
            raise UsageError(f'auth info "{user_name}" does not exist', "check --user")
        cluster, cluster_dir = self.clusters.get(cluster_name, ({}, Path.cwd()))
        user, user_dir = self.users.get(user_name, ({}, Path.cwd()))
        cluster, user = flags.cluster_entry(cluster), flags.user_entry(user)
        check_user(user_name, user)
        server = _server(context, str(cluster.get("server") or ""))
        authority = _pem(cluster, "certificate-authority", cluster_dir, context)
        insecure = bool(cluster.get("insecure-skip-tls-verify"))
        if insecure and authority:
            raise UserError("specifying a root certificates file with the insecure flag is not allowed", "remove one of them")
        client = _pair(user, user_dir, context)
        via = route(urlsplit(server), cluster.get("proxy-url"))
        credential = credential_for(context, user_name, user, user_dir, cluster, exec_cluster(server, cluster, authority, via))
        return Endpoint(
            server, authority, insecure, client, cluster.get("tls-server-name"), via, credential, impersonation(user), flags.request_seconds
        )


def _server(context: str, server: str) -> str:
    """The server URL as Go's net/url reads it (the scheme in any case), or kubectl's refusal."""
    if not server:
        raise UserError(f"context {context} names no cluster with a server in the kubeconfig", LOAD_HINT)
    url = urlsplit(server)
    if url.scheme.lower() not in ("https", "http") or not url.hostname:
        raise UserError(
            f'host must be a URL or a host:port pair: "{server}"', "check the cluster's server in your kubeconfig (or --server)"
        )
    try:
        url.port  # noqa: B018 - urlsplit checks the port when it is read
    except ValueError:
        port = url.netloc.rpartition(":")[2]
        raise UserError(
            f"the server {server!r} of context {context}: dial tcp: address {port}: invalid port", "fix the server's port"
        ) from None
    return url._replace(scheme=url.scheme.lower()).geturl()


def exec_cluster(server: str, cluster: Entry, authority: bytes | None, via: Route) -> Entry:
    """What a plugin with provideClusterInfo is told of the cluster (client-go's ConfigToExecCluster)."""
    info: Entry = {"server": server}
    if cluster.get("tls-server-name"):
        info["tls-server-name"] = cluster["tls-server-name"]
    if cluster.get("insecure-skip-tls-verify"):
        info["insecure-skip-tls-verify"] = True
    if authority:
        info["certificate-authority-data"] = base64.b64encode(authority).decode()
    if via.proxy:
        info["proxy-url"] = via.proxy
    for extension in cluster.get("extensions") or []:
        if isinstance(extension, dict) and extension.get("name") == "client.authentication.k8s.io/exec":
            info["config"] = extension.get("extension")
    return info


def impersonation(user: Entry) -> tuple[tuple[str, str], ...]:
    """The Impersonate-* headers of a user entry (`as`, `as-groups`, `as-uid`, `as-user-extra`), as client-go sends them."""
    if not user.get("as"):
        return ()
    headers = [("Impersonate-User", str(user["as"]))]
    headers += [("Impersonate-Group", str(group)) for group in user.get("as-groups") or []]
    headers += [("Impersonate-Uid", str(user["as-uid"]))] if user.get("as-uid") else []
    for key, values in (user.get("as-user-extra") or {}).items():
        escaped = "".join(char if char in HEADER_NAME else quote(char, safe="") for char in str(key))
        headers += [(f"Impersonate-Extra-{escaped}", str(value)) for value in values or []]
    return tuple(headers)


def load(kubeconfig: str | None) -> Kubeconfig:
    """`--kubeconfig`'s file, else KUBECONFIG's files merged, else ~/.kube/config, else (in a pod) its service account."""
    paths = [kubeconfig] if kubeconfig else (os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG).split(os.pathsep)
    contexts: dict[str, Entry] = {}
    clusters: dict[str, tuple[Entry, Path]] = {}
    users: dict[str, tuple[Entry, Path]] = {}
    current, read = "", 0
    for raw in filter(None, paths):
        path = Path(raw).expanduser()
        document = _read(path, required=bool(kubeconfig))
        if document is None:
            continue
        read += 1
        current = current or str(document.get("current-context") or "")
        for key, into in (("clusters", clusters), ("users", users)):
            for name, item in _named(document, key, path):
                into.setdefault(name, (item, path.parent))
        for name, item in _named(document, "contexts", path):
            contexts.setdefault(name, item)
    if not read and not contexts:
        if (endpoint := in_cluster()) is not None:
            return Kubeconfig({IN_CLUSTER: {}}, {}, {}, IN_CLUSTER, endpoint)
        raise UserError(f"cannot load kubeconfig: no file at {', '.join(filter(None, paths))}", LOAD_HINT)
    return Kubeconfig(contexts, clusters, users, current)


def _named(document: dict[str, Any], key: str, path: Path) -> list[tuple[str, Entry]]:
    """A list of named entries (`{name, cluster: {...}}`), or the error Go's JSON decoder gives kubectl for it."""
    entries = document.get(key) or []
    if not isinstance(entries, list):
        _unmarshal(path, entries, f"Config.{key}", f"[]v1.{NAMED[key]}")
    found = []
    for item in entries:
        if not isinstance(item, dict):
            _unmarshal(path, item, f"Config.{key}", f"v1.{NAMED[key]}")
        body = item.get(key[:-1]) or {}
        if not isinstance(body, dict):
            _unmarshal(path, body, f"{NAMED[key]}.{key[:-1]}", f"v1.{NAMED[key].removeprefix('Named')}")
        found.append((str(item.get("name")), body))
    return found


def _unmarshal(path: Path, value: Any, where: str, expected: str) -> None:
    kind = {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(value), "number")
    raise UserError(
        f'error loading config file "{path}": json: cannot unmarshal {kind} into Go struct field {where} of type {expected}', LOAD_HINT
    )


def _read(path: Path, *, required: bool) -> dict[str, Any] | None:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise UserError(f"cannot load kubeconfig: no file at {path}", LOAD_HINT) from None
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot load kubeconfig {path}: {getattr(error, 'strerror', None) or error}", LOAD_HINT) from None
    try:
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        raise UserError(f"cannot load kubeconfig {path}: {' '.join(str(error).split())}", LOAD_HINT) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserError(f"cannot load kubeconfig {path}: not a kubeconfig", LOAD_HINT)
    return document


def _pem(entry: Entry, key: str, base: Path, context: str) -> bytes | None:
    """`<key>-data` (base64) or the file `<key>` names, relative to its kubeconfig."""
    if data := entry.get(f"{key}-data"):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise UserError(f"{key}-data of context {context} is not base64", LOAD_HINT) from None
    if name := entry.get(key):
        try:
            return (base / Path(str(name)).expanduser()).read_bytes()
        except OSError as error:
            raise UserError(f"unable to read {key} {name} of context {context}: {error.strerror}", LOAD_HINT) from None
    return None


def _pair(user: Entry, base: Path, context: str) -> tuple[bytes, bytes] | None:
    certificate = _pem(user, "client-certificate", base, context)
    return (certificate, _pem(user, "client-key", base, context) or b"") if certificate else None


def tls_context(authority: bytes | None, insecure: bool, client: tuple[bytes, bytes] | None) -> ssl.SSLContext:
    """Verified against the cluster's CA (else the system's roots), with the user's client certificate if it has one."""
    try:
        context = verifying_context(cadata=authority.decode() if authority else None)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client:
            _load_client_certificate(context, *client)
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as error:
        raise UserError(
            f"the kubeconfig's TLS material does not load: {error}", "check its certificate-authority and client-certificate"
        ) from None
    return context


def _load_client_certificate(context: ssl.SSLContext, certificate: bytes, key: bytes) -> None:
    """ssl loads a client certificate only from files: one private file for the moment it takes, then gone."""
    handle, path = tempfile.mkstemp(prefix="kubectl-istio-remote-", suffix=".pem")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write((key or certificate).rstrip(b"\n") + b"\n" + certificate)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


def in_cluster() -> Endpoint | None:
    """The pod's own service account, as a kubelet mounts it; None outside a pod."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (SERVICE_ACCOUNT / "token").is_file():
        return None
    host = f"[{host}]" if ":" in host else host
    server = f"https://{host}:{port}"
    authority = (SERVICE_ACCOUNT / "ca.crt").read_bytes()
    return Endpoint(server, authority, False, None, None, route(urlsplit(server), None), TokenFile(SERVICE_ACCOUNT / "token"))
