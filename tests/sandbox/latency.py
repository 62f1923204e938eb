"""Round-trip time in front of both API servers: toxiproxy (the real one, built by the sandbox) on loopback.

`python -m tests.sandbox latency --rtt-ms 50` starts it if needed, sets half the round trip on
each direction of both proxies, and prints as JSON a kubeconfig whose clusters point at the
proxies, and each API server's audit log. `--also NAME=HOST:PORT` puts another server behind the
same round trip (the shared aggregator, which mesh users reach across the same network) and
prints where it listens. The certificates stay valid: the proxies listen on 127.0.0.1 too.
`down` stops toxiproxy with the rest of the sandbox.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import portpicker
import yaml

from tests.sandbox import build, procs
from tests.sandbox.clusters import CLUSTERS, KUBECONFIG, audit_log
from tests.sandbox.paths import STATE

SLOW_KUBECONFIG = STATE / "kubeconfig-slow"
API_PORT_FILE = STATE / "toxiproxy.port"
STREAMS = ("upstream", "downstream")


def _api(port: int, method: str, path: str, body: dict | None = None) -> object:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        data = response.read()
    return json.loads(data) if data else None


def _toxiproxy() -> int:
    """The API port of the running toxiproxy, started (with one proxy per API server) if it is not running."""
    if procs.is_running("toxiproxy") and API_PORT_FILE.exists():
        return int(API_PORT_FILE.read_text())
    port = portpicker.pick_unused_port()
    procs.start("toxiproxy", [build.binary("toxiproxy-server"), "-host", "127.0.0.1", "-port", str(port)])
    procs.wait_until("toxiproxy", lambda: procs.port_open("127.0.0.1", port), 30, process="toxiproxy")
    API_PORT_FILE.write_text(str(port))
    listen = {}
    for spec in CLUSTERS:
        created = _api(
            port, "POST", "/proxies", {"name": spec.name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{spec.apiserver_port}"}
        )
        listen[spec.name] = created["listen"]  # type: ignore[index]
    _write_kubeconfig(listen)
    return port


def _write_kubeconfig(listen: dict[str, str]) -> None:
    """The sandbox kubeconfig with each cluster's server replaced by its proxy."""
    document = yaml.safe_load(KUBECONFIG.read_text())
    servers = {f"https://127.0.0.1:{spec.apiserver_port}": f"https://{listen[spec.name]}" for spec in CLUSTERS}
    for entry in document["clusters"]:
        entry["cluster"]["server"] = servers.get(entry["cluster"]["server"], entry["cluster"]["server"])
    SLOW_KUBECONFIG.write_text(yaml.safe_dump(document))
    SLOW_KUBECONFIG.chmod(0o600)


def _proxy(port: int, name: str, upstream: str) -> str:
    """A proxy of that name to `upstream`, made if it is not there yet; where it listens."""
    try:
        return str(_api(port, "GET", f"/proxies/{name}")["listen"])  # type: ignore[index]
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
    return str(_api(port, "POST", "/proxies", {"name": name, "listen": "127.0.0.1:0", "upstream": upstream})["listen"])  # type: ignore[index]


def set_round_trip(rtt_ms: int, also: dict[str, str] | None = None) -> dict[str, object]:
    port = _toxiproxy()
    extra = {name: _proxy(port, name, upstream) for name, upstream in (also or {}).items()}
    for proxy in [spec.name for spec in CLUSTERS] + list(extra):
        for stream in STREAMS:
            name = f"latency-{stream}"
            try:
                _api(port, "DELETE", f"/proxies/{proxy}/toxics/{name}")
            except urllib.error.HTTPError as error:
                if error.code != 404:
                    raise
            if rtt_ms:
                toxic = {
                    "name": name,
                    "type": "latency",
                    "stream": stream,
                    "toxicity": 1.0,
                    "attributes": {"latency": rtt_ms // 2, "jitter": 0},
                }
                _api(port, "POST", f"/proxies/{proxy}/toxics", toxic)
    logs = {spec.name: str(audit_log(spec.name)) for spec in CLUSTERS}
    return {"kubeconfig": str(SLOW_KUBECONFIG), "rtt_ms": rtt_ms, "audit_logs": logs, "also": extra}


def print_round_trip(rtt_ms: int, also: list[str]) -> None:
    print(json.dumps(set_round_trip(rtt_ms, dict(item.split("=", 1) for item in also))))
