"""Where the sandbox keeps its build cache and its running state, and how it reports progress."""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE = Path(os.environ.get("KUBECTL_ISTIO_REMOTE_CACHE", Path.home() / ".cache" / "kubectl-istio-remote"))
STATE = Path(os.environ.get("KUBECTL_ISTIO_REMOTE_SANDBOX", CACHE / "sandbox"))


def log(message: str) -> None:
    """Progress goes to stderr, so `env` output on stdout stays evaluable."""
    print(f"sandbox: {message}", file=sys.stderr, flush=True)
