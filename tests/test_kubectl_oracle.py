"""kubectl is the oracle: the real kubectl and the plugin read the same kubeconfig, in the same environment, and talk to
the same recording stand-ins (tests/doubles/recorder.py); what each sent, and whether each accepted the kubeconfig at all,
must be the same.

kubectl runs `get --raw /api/v1/namespaces/default/pods`; the plugin runs `cleanup --dry-run`, in-process, as a user
runs it (its requests: a SelfSubjectReview and four lists). Compared, for every case: whether the kubeconfig is accepted
(and, when kubectl refuses it, that the plugin refuses it in one line with kubectl's reason); the identity every request
carried (Authorization, Impersonate-User, -Group, -Uid, -Extra-*) and the client certificate it presented; which proxy
was used, for which target, with which credentials; how often the exec credential plugin ran. No secret of the
kubeconfig may appear in what the plugin prints.

The cases (CASES below), from the issue and from client-go's clientcmd and transport tests:
tokens (inline, file relative to the kubeconfig, both, with a trailing newline, not UTF-8), basic auth (and a user
without a password, and with a token too), client certificates (files and data), exec plugins (a token with an RFC 3339
`Z` expiry, a client certificate, next to a token, run again after a 401, cluster info), TLS (insecure with and without a
CA, tls-server-name, a capitalized scheme, a port out of range), impersonation (kubeconfig `as:`, `as-groups`, `as-uid`,
`as-user-extra`, and `--as/--as-group/--as-uid`), kubectl's flags (`--token`, `--server`, `--user`, `--cluster`,
`--insecure-skip-tls-verify`, `--certificate-authority`, `--tls-server-name`), proxies (HTTPS_PROXY for loopback and
other hosts, with credentials, ALL_PROXY, NO_PROXY's forms: CIDR, domain, `*.domain`, `.domain`, host:port, `*`;
proxy-url http and socks5, proxy-url beside a matching NO_PROXY), KUBECONFIG's files merged, a redirect, and
kubeconfigs malformed (`clusters:` as a mapping).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubectl_istio_remote.kube.api_errors import ApiError
from kubectl_istio_remote.kube.cluster import Cluster, transport_for
from kubectl_istio_remote.kube.kinds import POD
from tests.cli_runner import run_cli
from tests.doubles.recorder import ExecPlugin, Proxy, Recorder, Reply, Seen
from tests.sandbox import build
from tests.sandbox.pki import Authority

KUBECTL_PATH = "/api/v1/namespaces/default/pods"
#: Environment variables a case may set; cleared from this process for every other case.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
SECRETS = ("s3cr3t-token", "file-token", "hunter2", "plugin-token", "fresh-token", "proxy-pass")


@dataclass(frozen=True)
class Case:
    name: str
    #: The kubeconfig user (`{...}` filled in by the fixture: ca, client_cert, client_key, *_data, plugin).
    user: dict[str, Any] = field(default_factory=lambda: {"token": "s3cr3t-token"})
    #: Fields of the cluster besides the server (`server` here replaces the default https://127.0.0.1:{port}).
    cluster: dict[str, Any] = field(default_factory=lambda: {"certificate-authority": "{ca}"})
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    #: A proxy in front of the server: "http", "http-auth" (wants proxy-user:proxy-pass), "socks5".
    proxy: str = ""
    #: The exec plugin's answers, in order (the last repeating), when the user runs it.
    plugin: tuple[dict[str, Any], ...] = ()
    #: How the server answers besides `200 {}`.
    reply: Callable[[Seen], Reply | None] | None = None
    #: The whole kubeconfig document, when the case is about its shape.
    document: Callable[[dict[str, Any]], Any] | None = None
    #: Whether kubectl gets its answer (asserted, so a case cannot silently test something else).
    accepted: bool = True
    #: When it does not: kubectl's reason for refusing the kubeconfig, which the plugin must give too ("": it could not
    #: reach the server, as the case means it not to).
    reason: str = ""


def template(value: Any, fill: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, replacement in fill.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, dict):
        return {key: template(item, fill) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [template(item, fill) for item in value]
    return value


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@dataclass
class Observed:
    exit_code: int
    output: str
    #: Distinct (identity headers, client certificate) the server saw.
    identities: set[tuple[tuple[tuple[str, str], ...], str]]
    via: set[str]
    proxy_credentials: set[str]
    plugin_runs: int
    requests: list[Seen]

    @property
    def accepted(self) -> bool:
        return self.exit_code == 0


@dataclass
class Bench:
    """The stand-ins and files of one case, and how to run each tool there."""

    directory: Path
    authority: Authority
    recorder: Recorder
    proxy: Proxy | None
    plugin: ExecPlugin
    case: Case
    kubeconfig: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    args: list[str] = field(init=False)

    def __post_init__(self) -> None:
        client_cert, client_key = self.authority.issue("client", "jane", groups=("devs",))
        plugin_cert, plugin_key = self.authority.issue("plugin-client", "plugin-jane")
        fill = {
            "ca": str(self.authority.cert_path),
            "ca_data": b64(self.authority.cert_path),
            "client_cert": str(client_cert),
            "client_key": str(client_key),
            "client_cert_data": b64(client_cert),
            "client_key_data": b64(client_key),
            "plugin_cert_pem": plugin_cert.read_text(),
            "plugin_key_pem": plugin_key.read_text(),
            "port": str(self.recorder.port),
            "proxy": self.proxy.url if self.proxy else "",
            "proxy_port": str(self.proxy.port) if self.proxy else "",
            "dir": str(self.directory),
        }
        user = template(self.case.user, fill)
        if self.case.plugin:
            user = {**user, "exec": {**self.plugin.install(template(list(self.case.plugin), fill)), **user.get("exec", {})}}
        cluster = {"server": f"https://127.0.0.1:{self.recorder.port}", **template(self.case.cluster, fill)}
        document: Any = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
            "current-context": "ctx",
        }
        if self.case.document:
            document = self.case.document(document)
        self.kubeconfig = self.directory / "kubeconfig"
        self.kubeconfig.write_text(json.dumps(document))
        (self.directory / "token").write_text("file-token\n")
        (self.directory / "latin1-token").write_bytes(b"caf\xe9-token\n")
        base = {key: value for key, value in os.environ.items() if key not in PROXY_VARIABLES and key != "KUBECONFIG"}
        self.env = {**base, "HOME": str(self.directory / "home"), **template(self.case.env, fill)}
        self.args = list(template(self.case.args, fill))

    def observed(self, exit_code: int, output: str, since: int, proxy_since: int) -> Observed:
        requests = self.recorder.seen[since:]
        via = set(self.proxy.targets[proxy_since:]) if self.proxy else set()
        credentials = set(self.proxy.credentials[proxy_since:]) if self.proxy else set()
        runs = len(self.plugin.runs()) if self.case.plugin else 0  # kubectl runs it twice for one request: compared as ran or not
        return Observed(exit_code, output, {(seen.identity, seen.client) for seen in requests}, via, credentials, runs, requests)

    def kubectl(self) -> Observed:
        since, proxy_since = len(self.recorder.seen), len(self.proxy.targets) if self.proxy else 0
        argv = [str(build.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), "get", "--raw", KUBECTL_PATH, "--request-timeout", "5s"]
        done = subprocess.run([*argv, *self.args], env=self.env, capture_output=True, text=True, timeout=60, check=False)
        return self.observed(done.returncode, done.stderr, since, proxy_since)

    def plugin_run(self, monkeypatch: pytest.MonkeyPatch) -> Observed:
        if self.case.plugin:
            (self.plugin.directory / "runs").write_text("")
        since, proxy_since = len(self.recorder.seen), len(self.proxy.targets) if self.proxy else 0
        with monkeypatch.context() as patched:
            for key in [*PROXY_VARIABLES, "KUBECONFIG", "HOME"]:
                patched.delenv(key, raising=False)
            for key, value in self.env.items():
                patched.setenv(key, value)
            result = run_cli(
                "cleanup", "--dry-run", "-i", "default", "--kubeconfig", str(self.kubeconfig), "--request-timeout", "5s", *self.args
            )
        return self.observed(result.exit_code, result.stderr + result.stdout, since, proxy_since)


def unauthorized_once(token: str) -> Callable[[Seen], Reply | None]:
    def reply(seen: Seen) -> Reply | None:
        if ("authorization", f"Bearer {token}") in seen.identity:
            return 401, {"Content-Type": "application/json"}, b'{"kind":"Status","code":401,"message":"Unauthorized"}'
        return None

    return reply


def redirect_once(seen: Seen) -> Reply | None:
    if not seen.path.startswith("/moved"):
        return 302, {"Location": f"/moved{seen.path}"}, b""
    return None


def clusters_as_mapping(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "clusters": {"c": document["clusters"][0]["cluster"]}}


EXPIRES = "2099-01-01T00:00:00Z"


def no_proxy_case(name: str, no_proxy: str, host: str, *, accepted: bool = True, variable: str = "NO_PROXY") -> Case:
    """HTTPS_PROXY set, NO_PROXY `no_proxy`, the server at `host`: not accepted where the host is excluded from the proxy
    and unreachable without it (as for kubectl)."""
    return Case(
        name,
        proxy="http",
        env={"HTTPS_PROXY": "{proxy}", variable: no_proxy},
        cluster={"server": f"https://{host}:{{port}}", "certificate-authority": "{ca}"},
        accepted=accepted,
    )


CASES = [
    Case("a token"),
    Case("a token file, relative to the kubeconfig", user={"tokenFile": "token"}),
    Case("a token and a token file: the file's", user={"token": "s3cr3t-token", "tokenFile": "token"}),
    Case("a token file that is not UTF-8", user={"tokenFile": "latin1-token"}),
    Case("a token with a trailing newline", user={"token": "s3cr3t-token\n"}, accepted=False, reason="invalid header field value"),
    Case("basic auth", user={"username": "jane", "password": "hunter2"}),
    Case("a username without a password", user={"username": "jane"}),
    Case(
        "a token and basic auth",
        user={"token": "s3cr3t-token", "username": "jane", "password": "hunter2"},
        accepted=False,
        reason="more than one authentication method found for u; found [token basicAuth], only one is allowed",
    ),
    Case("client certificate files", user={"client-certificate": "{client_cert}", "client-key": "{client_key}"}),
    Case("client certificate data", user={"client-certificate-data": "{client_cert_data}", "client-key-data": "{client_key_data}"}),
    Case("an exec plugin's token, expiring in RFC 3339 Z", user={}, plugin=({"token": "plugin-token", "expirationTimestamp": EXPIRES},)),
    Case(
        "an exec plugin's client certificate",
        user={},
        plugin=({"clientCertificateData": "{plugin_cert_pem}", "clientKeyData": "{plugin_key_pem}", "expirationTimestamp": EXPIRES},),
    ),
    Case("an exec plugin beside a token: the token", user={"token": "s3cr3t-token"}, plugin=({"token": "plugin-token"},)),
    Case(
        "an exec plugin given the cluster's info",
        user={"exec": {"provideClusterInfo": True}},
        cluster={"certificate-authority": "{ca}", "tls-server-name": "localhost"},
        plugin=({"token": "plugin-token"},),
    ),
    Case(
        "insecure-skip-tls-verify beside a CA",
        cluster={"certificate-authority": "{ca}", "insecure-skip-tls-verify": True},
        accepted=False,
        reason="specifying a root certificates file with the insecure flag is not allowed",
    ),
    Case("insecure-skip-tls-verify alone", cluster={"insecure-skip-tls-verify": True}),
    Case("tls-server-name", cluster={"certificate-authority": "{ca}", "tls-server-name": "kubernetes.internal"}),
    Case(
        "a tls-server-name the certificate does not name",
        cluster={"certificate-authority": "{ca}", "tls-server-name": "wrong.example"},
        accepted=False,
        reason="wrong.example",
    ),
    Case("a capitalized scheme", cluster={"server": "HTTPS://127.0.0.1:{port}", "certificate-authority": "{ca}"}),
    Case(
        "a port out of range",
        cluster={"server": "https://127.0.0.1:99999", "certificate-authority": "{ca}"},
        accepted=False,
        reason="invalid port",
    ),
    Case(
        "clusters written as a mapping", document=clusters_as_mapping, accepted=False, reason="cannot unmarshal object into Go struct field"
    ),
    Case(
        "impersonation in the kubeconfig",
        user={"token": "s3cr3t-token", "as": "ops", "as-groups": ["oncall", "sre"], "as-uid": "42", "as-user-extra": {"scopes": ["view"]}},
    ),
    Case("impersonation flags", args=("--as", "ops", "--as-group", "oncall", "--as-group", "sre", "--as-uid", "42")),
    Case("--token over the kubeconfig's", args=("--token", "fresh-token")),
    Case(
        "--user and --cluster",
        document=lambda document: {**document, "users": [*document["users"], {"name": "other", "user": {"token": "fresh-token"}}]},
        args=("--user", "other"),
    ),
    Case("--insecure-skip-tls-verify over a CA", args=("--insecure-skip-tls-verify",)),
    Case("--certificate-authority", cluster={}, args=("--certificate-authority", "{ca}")),
    Case(
        "--server",
        cluster={"server": "https://127.0.0.1:1", "certificate-authority": "{ca}"},
        args=("--server", "https://localhost:{port}"),
    ),
    Case("HTTPS_PROXY, the server on loopback: not proxied", proxy="http", env={"HTTPS_PROXY": "{proxy}"}),
    Case(
        "HTTPS_PROXY, the server elsewhere: proxied",
        proxy="http",
        env={"HTTPS_PROXY": "{proxy}"},
        cluster={"server": "https://apiserver.example:{port}", "certificate-authority": "{ca}"},
    ),
    Case(
        "https_proxy in lower case",
        proxy="http",
        env={"https_proxy": "{proxy}"},
        cluster={"server": "https://apiserver.example:{port}", "certificate-authority": "{ca}"},
    ),
    Case(
        "a proxy's credentials",
        proxy="http-auth",
        env={"HTTPS_PROXY": "{proxy}"},
        cluster={"server": "https://apiserver.example:{port}", "certificate-authority": "{ca}"},
    ),
    Case(
        "ALL_PROXY is not kubectl's",
        proxy="socks5",
        env={"ALL_PROXY": "socks5h://127.0.0.1:{proxy_port}"},
        cluster={"server": "https://apiserver.example:{port}", "certificate-authority": "{ca}"},
        accepted=False,
    ),
    no_proxy_case("NO_PROXY, a CIDR", "198.51.100.0/24", "198.51.100.7", accepted=False),
    no_proxy_case("NO_PROXY, another CIDR", "10.0.0.0/8", "198.51.100.7"),
    no_proxy_case("NO_PROXY, a domain", "example", "apiserver.example", accepted=False),
    no_proxy_case("NO_PROXY, *.domain", "*.example", "apiserver.example", accepted=False),
    no_proxy_case("NO_PROXY, a host:port of another port", "apiserver.example:1", "apiserver.example"),
    no_proxy_case("NO_PROXY, *", "*", "apiserver.example", accepted=False, variable="no_proxy"),
    Case(
        "proxy-url",
        proxy="http",
        cluster={"server": "https://apiserver.example:{port}", "certificate-authority": "{ca}", "proxy-url": "{proxy}"},
    ),
    Case(
        "proxy-url beside a matching NO_PROXY: proxied",
        proxy="http",
        env={"NO_PROXY": "apiserver.example"},
        cluster={"server": "https://apiserver.example:{port}", "certificate-authority": "{ca}", "proxy-url": "{proxy}"},
    ),
    Case(
        "proxy-url, socks5",
        proxy="socks5",
        cluster={"server": "https://apiserver.example:{port}", "certificate-authority": "{ca}", "proxy-url": "{proxy}"},
    ),
    Case("a redirect on the same host", reply=redirect_once),
]


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("oracle-ca"))


@pytest.fixture
def bench(request: pytest.FixtureRequest, authority: Authority, tmp_path: Path) -> Iterator[Bench]:
    case: Case = request.param
    recorder = Recorder(authority, reply=case.reply or (lambda seen: None))
    with recorder.running():
        proxy = None
        if case.proxy:
            proxy = Proxy(
                "socks5" if case.proxy == "socks5" else "http", recorder.port, "proxy-user:proxy-pass" if case.proxy == "http-auth" else ""
            )
        with proxy.running() if proxy else contextlib.nullcontext():
            yield Bench(tmp_path, authority, recorder, proxy, ExecPlugin(tmp_path / "plugin"), case)


@pytest.mark.parametrize("bench", CASES, ids=[case.name for case in CASES], indirect=True)
def test_the_plugin_sends_what_kubectl_sends(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    kubectl = bench.kubectl()
    assert kubectl.accepted == bench.case.accepted, f"kubectl: {kubectl}"
    assert bench.case.reason in kubectl.output, kubectl.output
    ours = bench.plugin_run(monkeypatch)
    assert ours.accepted == kubectl.accepted, f"kubectl: {kubectl.output}\nplugin: {ours.output}"
    assert "Traceback" not in ours.output and len(ours.output.strip().splitlines()) <= 1, ours.output
    assert not [secret for secret in SECRETS if secret in ours.output], ours.output
    assert bench.case.reason in ours.output, ours.output
    assert ours.identities == kubectl.identities
    assert (ours.via, ours.proxy_credentials) == (kubectl.via, kubectl.proxy_credentials)
    assert bool(ours.plugin_runs) == bool(kubectl.plugin_runs)


#: The plugin's answers: kubectl runs it twice before its request, so a third run is the one after the 401.
AFTER_A_401 = Case(
    "an exec plugin run again after a 401",
    user={},
    plugin=({"token": "plugin-token"}, {"token": "plugin-token"}, {"token": "fresh-token"}),
    reply=unauthorized_once("plugin-token"),
    accepted=False,
    reason="You must be logged in to the server",
)


@pytest.mark.parametrize("bench", [AFTER_A_401], ids=[AFTER_A_401.name], indirect=True)
def test_after_a_401_the_exec_plugin_runs_again_for_the_next_request(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    """client-go refreshes the credential when a request is answered 401 and does not send that request again: kubectl's
    one request fails, and so does the plugin's command (its first round of requests, sent at once, all carried the old
    token), having run the plugin once more, not once per refused request; a long session's next request carries the new
    token."""
    kubectl = bench.kubectl()
    assert not kubectl.accepted and bench.case.reason in kubectl.output and kubectl.plugin_runs > 2, kubectl
    assert [seen.identity for seen in kubectl.requests] == [(("authorization", "Bearer plugin-token"),)]
    # kubectl ran the plugin twice before its request; the plugin runs it once: its second run is the one after the 401.
    (bench.plugin.directory / "answers.json").write_text(json.dumps([{"token": "plugin-token"}, {"token": "fresh-token"}]))
    ours = bench.plugin_run(monkeypatch)
    assert not ours.accepted and "rejected the credentials" in ours.output and ours.plugin_runs == 2, ours
    (bench.plugin.directory / "runs").write_text("")
    with monkeypatch.context() as patched:
        for key, value in bench.env.items():
            patched.setenv(key, value)
        cluster = Cluster("ctx", str(bench.kubeconfig), transport_for(str(bench.kubeconfig)))
        with pytest.raises(ApiError):
            cluster.list_objects(POD, "default")
        cluster.list_objects(POD, "default")
    assert [dict(seen.identity)["authorization"] for seen in bench.recorder.seen[-2:]] == ["Bearer plugin-token", "Bearer fresh-token"]
