"""Who a request is sent as: a kubeconfig user's token, token file, password or exec credential plugin.

The exec plugin protocol (client.authentication.k8s.io) is run here, as kubectl runs it, so a
failing plugin is one line with its own message before anything is sent. The legacy auth
providers (oidc, gcp, azure) go through the official client's kubeconfig loader, which is only
imported for them.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

from kubectl_istio_remote.errors import UserError

#: A plugin's token is run for again this long before it expires, so no request carries a stale one.
EXPIRY_MARGIN_SECONDS = 10.0
LOGIN_HINT = "log in again as the plugin's message says, or check that context's user in your kubeconfig"


class Credential(Protocol):
    def authorization(self) -> str | None:
        """The Authorization header's value, current at the time of the call; None sends none."""


@dataclass(frozen=True)
class Anonymous:
    def authorization(self) -> str | None:
        return None


@dataclass(frozen=True)
class Header:
    """A bearer token or a password written in the kubeconfig."""

    value: str

    def authorization(self) -> str | None:
        return self.value


@dataclass(frozen=True)
class TokenFile:
    """A token file, read at each request: a projected service-account token is rotated under a running process."""

    path: Path

    def authorization(self) -> str | None:
        try:
            return f"Bearer {self.path.read_text().strip()}"
        except OSError as error:
            raise UserError(
                f"cannot read the token file {self.path}: {error.strerror}", "check the user's tokenFile in your kubeconfig"
            ) from None


@dataclass(frozen=True)
class PluginAnswer:
    token: str | None
    #: The client certificate and key (PEM), when the plugin answers with those instead of a token.
    pair: tuple[bytes, bytes] | None
    expires: float | None


class ExecPlugin:
    """An exec credential plugin (aws eks get-token, gke-gcloud-auth-plugin, kubelogin): run again when its token expires."""

    def __init__(self, context: str, spec: dict[str, Any], base: Path, cluster: dict[str, Any]) -> None:
        if not spec.get("command") or not spec.get("apiVersion"):
            raise UserError(f"the exec credential plugin of context {context} lacks command or apiVersion", LOGIN_HINT)
        self.context, self._spec, self._base, self._cluster = context, spec, base, cluster
        self._lock = threading.Lock()
        self._answer = self.run()

    @property
    def pair(self) -> tuple[bytes, bytes] | None:
        return self._answer.pair

    def authorization(self) -> str | None:
        with self._lock:
            if self._answer.expires is not None and self._answer.expires - EXPIRY_MARGIN_SECONDS < time.time():
                self._answer = self.run()
            return f"Bearer {self._answer.token}" if self._answer.token else None

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
            info["cluster"] = {key: value for key, value in self._cluster.items() if key != "extensions"}
            for extension in self._cluster.get("extensions") or []:
                if extension.get("name") == "client.authentication.k8s.io/exec":
                    info["cluster"]["config"] = extension.get("extension")
        env = {**os.environ, **{str(item["name"]): str(item["value"]) for item in spec.get("env") or []}}
        env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": spec["apiVersion"], "kind": "ExecCredential", "spec": info})
        try:
            done = subprocess.run(
                [command, *map(str, spec.get("args") or [])],
                env=env,
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=None if interactive else subprocess.PIPE,
                text=True,
                check=False,
            )
        except OSError as error:
            hint = " ".join(str(spec.get("installHint") or "").split())
            self._fail(f"cannot run {command}: {error.strerror}", hint or LOGIN_HINT)
        if done.returncode != 0:
            said = " ".join((done.stderr or "").split()).rstrip(":")
            self._fail(f"exit {done.returncode}" + (f": {said}" if said else ""))
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
                datetime.datetime.fromisoformat(expires).timestamp() if expires else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            self._fail(f"its answer is not an ExecCredential ({type(error).__name__}: {error})")

    def _fail(self, detail: str, hint: str = LOGIN_HINT) -> NoReturn:
        raise UserError(f"the credential plugin of context {self.context} failed: {detail}", hint)


class AuthProvider:
    """A legacy `auth-provider` (oidc, gcp, azure), which only the official client's loader knows; it refreshes the token."""

    def __init__(self, context: str, user: dict[str, Any], base: Path, cluster: dict[str, Any]) -> None:
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

    def authorization(self) -> str | None:
        value = self._configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None


def credential_for(
    context: str, user: dict[str, Any], base: Path, cluster: dict[str, Any]
) -> tuple[Credential, tuple[bytes, bytes] | None]:
    """The credential of a kubeconfig user, and the client certificate an exec plugin answered with."""
    if spec := user.get("exec"):
        plugin = ExecPlugin(context, spec, base, cluster)
        return plugin, plugin.pair
    if token := user.get("token"):
        return Header(f"Bearer {token}"), None
    if path := user.get("tokenFile"):
        return TokenFile(base / Path(path).expanduser()), None
    if user.get("username") and user.get("password"):
        basic = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode()
        return Header(f"Basic {basic}"), None
    if user.get("auth-provider"):
        return AuthProvider(context, user, base, cluster), None
    return Anonymous(), None
