"""What the plugin takes from the user's machine and keeps on it: TLS trust as Go's verifier (kubectl's, istioctl's)
has it, and small caches of what an earlier run learnt (istioctl's version, the shared aggregator)."""

from __future__ import annotations

import json
import os
import ssl
from pathlib import Path


def verifying_context(*, cafile: str | None = None, cadata: str | None = None) -> ssl.SSLContext:
    """A client context verifying against `cafile`/`cadata` (else the system's roots). Python 3.13 made X.509
    verification strict by default, refusing e.g. a cluster CA without an Authority Key Identifier that kubectl trusts."""
    context = ssl.create_default_context(cafile=cafile, cadata=cadata)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def recalled(name: str) -> dict[str, object]:
    """The cache `name` (a JSON object), empty when it is missing or unreadable."""
    try:
        loaded = json.loads(_cache_file(name).read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def keep(name: str, entries: dict[str, object], most: int) -> None:
    """Write the cache `name`: its newest `most` entries, private to the user, replaced at once; one that cannot be
    written only makes the next run slower."""
    path = _cache_file(name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(dict(list(entries.items())[-most:])))
        partial.chmod(0o600)
        partial.replace(path)
    except OSError:
        pass


def _cache_file(name: str) -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "kubectl-istio-remote" / name
