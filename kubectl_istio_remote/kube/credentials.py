"""Who a request is sent as: a kubeconfig user's token, token file, password, client certificate or exec plugin.

Chosen as client-go chooses (tools/clientcmd, transport, plugin/pkg/client/auth/exec): a token file
wins over an inline token; a token, a password or a client certificate each win over an exec
plugin, which then never runs; a token beside a password is refused, in kubectl's words. The exec
plugin protocol (client.authentication.k8s.io) is run here as kubectl runs it: its stderr is the
user's (a device-code login prints there), it runs again when its credential expires or a request
is answered 401, and a failing plugin is one line before anything is sent. The legacy auth
providers (oidc, gcp, azure) go through the official client's kubeconfig loader, imported for
them only.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

from kubectl_istio_remote.errors import UserError

#: A plugin's credential is run for again this long before it expires, so no request carries a stale one.
EXPIRY_MARGIN_SECONDS = 10.0
LOGIN_HINT = "log in again as the plugin's message says, or check that context's user in your kubeconfig"
USER_HINT = "fix that user in your kubeconfig"
INTERACTIVE_MODES = ("Never", "IfAvailable", "Always")
#: Plugin API versions whose kubeconfig entries may leave interactiveMode out (clientcmd's defaults).
DEFAULTS_TO_IF_AVAILABLE = ("client.authentication.k8s.io/v1beta1", "client.authentication.k8s.io/v1alpha1")
#: Go's textproto: a header value may not hold control characters other than tab.
INVALID_IN_HEADER = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE)


class Credential(Protocol):
    def authorization(self) -> bytes | None:
        """The Authorization header's value, current at the time of the call; None sends none."""

    def client_pair(self) -> tuple[bytes, bytes] | None:
        """A client certificate and key (PEM) that replaced the kubeconfig's since (an exec plugin's), or None."""

    def unauthorized(self, sent: bytes | None) -> None:
        """A request sent with `sent` was answered 401."""


class Static:
    """A bearer token or a password written in the kubeconfig (or given as --token), or nothing."""

    def __init__(self, value: bytes | None = None) -> None:
        self._value = value

    def authorization(self) -> bytes | None:
        return self._value

    def client_pair(self) -> tuple[bytes, bytes] | None:
        return None

    def unauthorized(self, sent: bytes | None) -> None:
        """Nothing to ask again: the request's own error tells the user to log in."""


class TokenFile(Static):
    """A token file, read at each request: a projected service-account token is rotated under a running process."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def authorization(self) -> bytes | None:
        try:
            token = self.path.read_bytes().strip()
        except OSError as error:
            raise UserError(
                f"cannot read the token file {self.path}: {error.strerror}", "check the user's tokenFile in your kubeconfig"
            ) from None
        return header_value(b"Bearer " + token, f"the token in {self.path}")


def header_value(value: bytes, what: str) -> bytes:
    """`value` if a header can carry it; else the error Go's net/http gives, without the value (a secret)."""
    if INVALID_IN_HEADER.search(value):
        raise UserError(
            f'{what} holds a line break or another control character: net/http: invalid header field value for "Authorization"',
            "remove it (a trailing newline, often)",
        )
    return value


@dataclass(frozen=True)
class PluginAnswer:
    token: str | None
    #: The client certificate and key (PEM), when the plugin answers with those.
    pair: tuple[bytes, bytes] | None
    expires: float | None


class ExecPlugin:
    """An exec credential plugin (aws eks get-token, gke-gcloud-auth-plugin, kubelogin): run again when its answer
    expires or a request with its token is answered 401."""

    def __init__(self, context: str, spec: dict[str, Any], base: Path, cluster: dict[str, Any]) -> None:
        self.context, self._spec, self._base, self._cluster = context, spec, base, cluster
        self._lock = threading.Lock()
        self._answer = self.run()

    def authorization(self) -> bytes | None:
        answer = self._current()
        return header_value(f"Bearer {answer.token}".encode(), f"the token of context {self.context}'s plugin") if answer.token else None

    def client_pair(self) -> tuple[bytes, bytes] | None:
        return self._current().pair

    def unauthorized(self, sent: bytes | None) -> None:
        """client-go's maybeRefreshCreds: run again, unless another request has already done it."""
        with self._lock:
            if sent == (f"Bearer {self._answer.token}".encode() if self._answer.token else None):
                self._answer = self.run()

    def _current(self) -> PluginAnswer:
        with self._lock:
            if self._answer.expires is not None and self._answer.expires - EXPIRY_MARGIN_SECONDS < time.time():
                self._answer = self.run()
            return self._answer

    def run(self) -> PluginAnswer:
        spec = self._spec
        command = str(spec["command"])
        if os.sep in command and not os.path.isabs(command):
            command = str(self._base / command)
        mode = spec.get("interactiveMode") or "IfAvailable"
        interactive = mode != "Never" and sys.stdin.isatty()
        if mode == "Always" and not interactive:
            self._fail("it needs a terminal (interactiveMode Always) and standard input is not one")
        info: dict[str, Any] = {"interactive": interactive}
        if spec.get("provideClusterInfo"):
            info["cluster"] = self._cluster
        env = {**os.environ, **{str(item["name"]): str(item["value"]) for item in spec.get("env") or []}}
        env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": spec["apiVersion"], "kind": "ExecCredential", "spec": info})
        try:
            # Its stderr is the user's, as kubectl leaves it: a device-code login prints its code there.
            done = subprocess.run(
                [command, *map(str, spec.get("args") or [])],
                env=env,
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                text=True,
                check=False,
            )
        except OSError as error:
            hint = " ".join(str(spec.get("installHint") or "").split())
            self._fail(f"cannot run {command}: {error.strerror}", hint or LOGIN_HINT)
        if done.returncode != 0:
            self._fail(f"exit {done.returncode} (its own message is above)")
        return self._parsed(done.stdout)

    def _parsed(self, printed: str) -> PluginAnswer:
        try:
            status = json.loads(printed)["status"]
            token = status.get("token")
            certificate, key = status.get("clientCertificateData"), status.get("clientKeyData")
            expires = status.get("expirationTimestamp")
            return PluginAnswer(
                str(token) if token else None,
                (certificate.encode(), key.encode()) if certificate and key else None,
                rfc3339(expires) if expires else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            self._fail(f"its answer is not an ExecCredential ({type(error).__name__}: {error})")

    def _fail(self, detail: str, hint: str = LOGIN_HINT) -> NoReturn:
        raise UserError(f"the credential plugin of context {self.context} failed: {detail}", hint)


def rfc3339(stamp: str) -> float:
    """Seconds since the epoch of an RFC 3339 time as Go writes it (`Z`, nanoseconds), on every Python we claim."""
    match = RFC3339.match(stamp.strip())
    if not match:
        raise ValueError(f"expirationTimestamp {stamp!r} is not RFC 3339")
    whole, fraction, zone = match.groups()
    parsed = datetime.datetime.fromisoformat(whole + ("+00:00" if zone.upper() == "Z" else zone))
    return parsed.timestamp() + float(fraction or 0)


class AuthProvider(Static):
    """A legacy `auth-provider` (oidc, gcp, azure), which only the official client's loader knows; it refreshes the token."""

    def __init__(self, context: str, user: dict[str, Any], base: Path, cluster: dict[str, Any]) -> None:
        super().__init__()
        from kubernetes import client
        from kubernetes import config as kube_config

        document = {
            "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": user}],
            "current-context": context,
        }
        self._configuration = client.Configuration()
        try:
            kube_config.load_kube_config_from_dict(
                document, context=context, client_configuration=self._configuration, persist_config=False, temp_file_path=str(base)
            )
        except kube_config.ConfigException as error:
            raise UserError(f"the auth-provider of context {context} failed: {error}", LOGIN_HINT) from None

    def authorization(self) -> bytes | None:
        value = self._configuration.get_api_key_with_prefix("BearerToken")
        return str(value).encode() if value else None


def check_user(name: str, user: dict[str, Any]) -> None:
    """clientcmd's validateAuthInfo: what kubectl refuses to run with, in its words."""
    methods = [
        method for method, present in (("token", user.get("token")), ("basicAuth", user.get("username") or user.get("password"))) if present
    ]
    if len(methods) > 1:
        raise UserError(
            f"more than one authentication method found for {name}; found [{' '.join(methods)}], only one is allowed", USER_HINT
        )
    if (user.get("client-certificate") or user.get("client-certificate-data")) and not (
        user.get("client-key") or user.get("client-key-data")
    ):
        raise UserError(
            f"client-key-data or client-key must be specified for {name} to use the clientCert authentication method.", USER_HINT
        )
    if (user.get("as-uid") or user.get("as-groups") or user.get("as-user-extra")) and not user.get("as"):
        raise UserError(f"requesting uid, groups or user-extra for {name} without impersonating a user", USER_HINT)
    spec = user.get("exec")
    if spec:
        problems = [
            f"{field} must be specified for {name} to use exec authentication plugin"
            for field in ("command", "apiVersion")
            if not spec.get(field)
        ]
        mode = spec.get("interactiveMode")
        if not mode and spec.get("apiVersion") not in DEFAULTS_TO_IF_AVAILABLE:
            problems.append(f"interactiveMode must be specified for {name} to use exec authentication plugin")
        elif mode and mode not in INTERACTIVE_MODES:
            problems.append(f'invalid interactiveMode for {name}: "{mode}"')
        if problems:
            raise UserError("; ".join(problems), USER_HINT)


def credential_for(
    context: str, name: str, user: dict[str, Any], base: Path, cluster: dict[str, Any], exec_cluster: dict[str, Any]
) -> Credential:
    """The credential of kubeconfig user `name` (already checked): what its requests' Authorization header carries."""
    if path := user.get("tokenFile"):
        return TokenFile(base / Path(path).expanduser())
    if token := user.get("token"):
        return Static(header_value(f"Bearer {token}".encode(), f"the token of user {name}"))
    if user.get("username") or user.get("password"):
        return Static(b"Basic " + base64.b64encode(f"{user.get('username', '')}:{user.get('password', '')}".encode()))
    if user.get("auth-provider"):
        return AuthProvider(context, user, base, cluster)
    if spec := user.get("exec"):
        if user.get("client-certificate") or user.get("client-certificate-data"):
            return Static()  # a client certificate wins: the plugin never runs, as in client-go
        return ExecPlugin(context, spec, base, exec_cluster)
    return Static()
