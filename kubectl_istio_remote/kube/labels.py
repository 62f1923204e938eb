"""The marks on every object the plugin creates, so `cleanup` finds exactly ours and knows whose and until when."""

from __future__ import annotations

import re

MANAGED_BY = {"app.kubernetes.io/managed-by": "kubectl-istio-remote"}
SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
SESSION_LABEL = "kubectl-istio-remote/session"
USER_LABEL = "kubectl-istio-remote/user"
EXPIRES_ANNOTATION = "kubectl-istio-remote/expires-at"
EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def label_value(text: str) -> str:
    """`text` made into a valid label value (users are often e-mail addresses or system:… names)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63].strip("-_.")
    return value or "unknown"
