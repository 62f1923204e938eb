"""The kubeconfig as kubectl reads it, and what one of its contexts needs to reach its API server.

KUBECONFIG's files are merged (the first file that names a cluster, user or context wins; missing
files are skipped), `--kubeconfig` names one file, and relative paths are read from the file that
holds them. Resolving a context gives an Endpoint: the server, a TLS context, the proxy and the
credentials (kube/credentials.py).
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubectl_istio_remote.errors import UsageError, UserError
from kubectl_istio_remote.kube.credentials import Credential, TokenFile, credential_for
from kubectl_istio_remote.kube.overrides import NO_FLAGS, ConnectionFlags

Entry = dict[str, Any]
DEFAULT_KUBECONFIG = "~/.kube/config"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
LOAD_HINT = "check --kubeconfig and KUBECONFIG"


@dataclass(frozen=True)
class Endpoint:
    """Everything a request to one API server needs: where, over which TLS, through which proxy, as whom."""

    server: str
    tls: ssl.SSLContext | None
    server_name: str | None
    proxy: str | None
    credential: Credential
    #: Impersonate-User, -Group (repeated), -Uid and -Extra-* headers: who the requests act as (kubeconfig `as:`, --as).
    impersonation: tuple[tuple[str, str], ...] = ()
    #: --request-timeout in seconds; None: the plugin's own limit for each kind of request.
    request_seconds: float | None = None

    @property
    def impersonated(self) -> str:
        """The user the requests act as ("" without impersonation), for messages."""
        return next((value for name, value in self.impersonation if name == "Impersonate-User"), "")


@dataclass(frozen=True)
class Kubeconfig:
    contexts: dict[str, Entry]
    clusters: dict[str, tuple[Entry, Path]]
    users: dict[str, tuple[Entry, Path]]
    current: str

    @property
    def names(self) -> list[str]:
        return list(self.contexts)

    def user_name(self, context: str) -> str:
        return str(self.contexts[context].get("user", ""))

    def endpoint(self, context: str, flags: ConnectionFlags = NO_FLAGS) -> Endpoint:
        """The context's server, TLS and credentials, kubectl's flags applied; a credential plugin runs here, before any request."""
        entry = self.contexts.get(context)
        if entry is None:
            raise UsageError(f"unknown context {context!r}", f"choose one of: {', '.join(self.names)}")
        cluster, cluster_dir = self.clusters.get(str(flags.cluster or entry.get("cluster")), ({}, Path.cwd()))
        user, user_dir = self.users.get(str(flags.user or entry.get("user")), ({}, Path.cwd()))
        cluster, user = flags.cluster_entry(cluster), flags.user_entry(user)
        server = str(cluster.get("server") or "")
        if not server:
            raise UserError(f"context {context} names no cluster with a server in the kubeconfig", LOAD_HINT)
        credential, plugin_pair = credential_for(context, user, user_dir, cluster)
        tls = None
        if server.startswith("https:"):
            pair = plugin_pair or (_pem(user, "client-certificate", user_dir, context), _pem(user, "client-key", user_dir, context))
            authority = _pem(cluster, "certificate-authority", cluster_dir, context)
            tls = tls_context(authority, bool(cluster.get("insecure-skip-tls-verify")), pair)
        return Endpoint(
            server, tls, cluster.get("tls-server-name"), cluster.get("proxy-url"), credential, impersonation(user), flags.request_seconds
        )


def impersonation(user: Entry) -> tuple[tuple[str, str], ...]:
    """The Impersonate-* headers of a user entry (`as`, `as-groups`, `as-uid`, `as-user-extra`), as client-go sends them."""
    if not user.get("as"):
        return ()
    headers = [("Impersonate-User", str(user["as"]))]
    headers += [("Impersonate-Group", str(group)) for group in user.get("as-groups") or []]
    headers += [("Impersonate-Uid", str(user["as-uid"]))] if user.get("as-uid") else []
    for key, values in (user.get("as-user-extra") or {}).items():
        headers += [(f"Impersonate-Extra-{key}", str(value)) for value in values or []]
    return tuple(headers)


def load(kubeconfig: str | None) -> Kubeconfig:
    """`--kubeconfig`'s file, else KUBECONFIG's files merged, else ~/.kube/config."""
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
            for item in document.get(key) or []:
                into.setdefault(str(item.get("name")), (item.get(key[:-1]) or {}, path.parent))
        for item in document.get("contexts") or []:
            contexts.setdefault(str(item.get("name")), item.get("context") or {})
    if not read:
        raise UserError(f"cannot load kubeconfig: no file at {', '.join(filter(None, paths))}", LOAD_HINT)
    return Kubeconfig(contexts, clusters, users, current)


def _read(path: Path, *, required: bool) -> dict[str, Any] | None:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise UserError(f"cannot load kubeconfig: no file at {path}", LOAD_HINT) from None
        return None
    except OSError as error:
        raise UserError(f"cannot load kubeconfig {path}: {error.strerror}", LOAD_HINT) from None
    try:
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as error:
        raise UserError(f"cannot load kubeconfig {path}: {' '.join(str(error).split())}", LOAD_HINT) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserError(f"cannot load kubeconfig {path}: not a kubeconfig", LOAD_HINT)
    return document


def _pem(entry: Entry, field: str, base: Path, context: str) -> bytes | None:
    """`<field>-data` (base64) or the file `<field>` names, relative to its kubeconfig."""
    if data := entry.get(f"{field}-data"):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise UserError(f"{field}-data of context {context} is not base64", LOAD_HINT) from None
    if name := entry.get(field):
        try:
            return (base / Path(name).expanduser()).read_bytes()
        except OSError as error:
            raise UserError(f"cannot read {field} {name} of context {context}: {error.strerror}", LOAD_HINT) from None
    return None


def tls_context(authority: bytes | None, insecure: bool, client: tuple[bytes | None, bytes | None]) -> ssl.SSLContext:
    """Verified against the cluster's CA (else the system's roots), with the user's client certificate if it has one."""
    try:
        context = ssl.create_default_context(cadata=authority.decode()) if authority else ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        certificate, key = client
        if certificate:
            _load_client_certificate(context, certificate, key or certificate)
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
            file.write(key.rstrip(b"\n") + b"\n" + certificate)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


def in_cluster() -> Endpoint | None:
    """The pod's own service account, as a kubelet mounts it; None outside a pod."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (SERVICE_ACCOUNT / "token").is_file():
        return None
    host = f"[{host}]" if ":" in host else host
    authority = (SERVICE_ACCOUNT / "ca.crt").read_bytes()
    return Endpoint(f"https://{host}:{port}", tls_context(authority, False, (None, None)), None, None, TokenFile(SERVICE_ACCOUNT / "token"))
