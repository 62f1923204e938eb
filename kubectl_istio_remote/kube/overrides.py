"""kubectl's connection flags (cli-runtime's ConfigFlags, clientcmd's ConfigOverrides): what they change in a context.

Each flag overrides what the kubeconfig says for the context being resolved, with clientcmd's
rules: `--user`/`--cluster` choose other entries, `--server` and `--tls-server-name` go together,
`--certificate-authority` or `--insecure-skip-tls-verify` replace the cluster's whole trust
setting, a flag's file path is read from the working directory. Impersonation adds
Impersonate-* headers to every request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from kubectl_istio_remote.errors import UsageError

Entry = dict[str, Any]
#: Go's time.ParseDuration units, in seconds.
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")


@dataclass(frozen=True)
class ConnectionFlags:
    """The flags as given; None (or False, or empty) leaves the kubeconfig's value."""

    #: One file, as kubectl's --kubeconfig (None: KUBECONFIG's files merged, else ~/.kube/config).
    kubeconfig: str | None = None
    #: The context (None: the kubeconfig's current one).
    context: str | None = None
    user: str | None = None
    cluster: str | None = None
    server: str | None = None
    token: str | None = None
    certificate_authority: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    impersonate: str | None = None
    impersonate_groups: tuple[str, ...] = ()
    impersonate_uid: str | None = None
    #: kubectl's default: "0", no limit of its own (the plugin's own per-request limits then apply).
    request_timeout: str = "0"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ConnectionFlags:
        """From a command's parsed flags (`--as-group` arrives as `impersonate_group`, a list)."""
        chosen = {item.name: params[item.name] for item in fields(cls) if params.get(item.name) is not None}
        chosen["impersonate_groups"] = tuple(params.get("impersonate_group") or ())
        return cls(**chosen)

    @property
    def request_seconds(self) -> float | None:
        """--request-timeout in seconds (None for 0), read as kubectl reads it: whole seconds, or a Go duration."""
        value = self.request_timeout.strip()
        if value.isdigit():
            return float(value) or None
        parts = DURATION.findall(value)
        if not parts or "".join(number + unit for number, unit in parts) != value:
            raise UsageError(
                f"--request-timeout {self.request_timeout!r} is not a duration",
                "give whole seconds, or a number with a unit (e.g. 1s, 2m, 3h)",
            )
        return sum(float(number) * DURATION_UNITS[unit] for number, unit in parts) or None

    def cluster_entry(self, cluster: Entry) -> Entry:
        """The cluster entry with these flags applied, as clientcmd's getCluster applies them."""
        merged = dict(cluster)
        if self.server:
            merged["server"] = self.server
        if self.insecure_skip_tls_verify or self.certificate_authority:
            merged["insecure-skip-tls-verify"] = self.insecure_skip_tls_verify
            merged.pop("certificate-authority-data", None)
            merged["certificate-authority"] = _from_here(self.certificate_authority)
        if self.tls_server_name or self.server:
            merged["tls-server-name"] = self.tls_server_name
        return {key: value for key, value in merged.items() if value is not None}

    def user_entry(self, user: Entry) -> Entry:
        """The user entry with these flags applied (clientcmd's getAuthInfo merge)."""
        merged = dict(user)
        for key, value in (
            ("token", self.token),
            ("client-certificate", _from_here(self.client_certificate)),
            ("client-key", _from_here(self.client_key)),
            ("as", self.impersonate),
            ("as-uid", self.impersonate_uid),
        ):
            if value:
                merged[key] = value
        if self.impersonate_groups:
            merged["as-groups"] = list(self.impersonate_groups)
        return merged

    def for_another_context(self) -> ConnectionFlags:
        """What applies to the control-plane context when it is not the mesh one: who we act as, and the request limit."""
        return replace(
            ConnectionFlags(),
            kubeconfig=self.kubeconfig,
            impersonate=self.impersonate,
            impersonate_groups=self.impersonate_groups,
            impersonate_uid=self.impersonate_uid,
            request_timeout=self.request_timeout,
        )


#: No flag given: the kubeconfig as it is.
NO_FLAGS = ConnectionFlags()


def _from_here(path: str | None) -> str | None:
    """A flag's path is the user's, from the working directory (a kubeconfig's paths are from its own file)."""
    return str(Path(path).expanduser().absolute()) if path else None
