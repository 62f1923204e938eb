"""Every failure of a Kubernetes request becomes, here and only here, one line a user can act on."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from kubectl_istio_remote.errors import UnavailableError, UserError
from kubectl_istio_remote.status import ExitStatus


@dataclass(frozen=True)
class Action:
    """What was asked of which API server, for the message: `list pods in namespace x of context y`."""

    verb: str
    resource: str
    namespace: str = ""
    context: str = ""
    host: str = ""
    name: str = ""
    #: The user the request acted as (--as, kubeconfig `as:`), "" when not impersonating.
    acting: str = ""

    @property
    def where(self) -> str:
        return f"in namespace {self.namespace} " if self.namespace else ""

    @property
    def of_context(self) -> str:
        """`context C`, or `context C, as USER` when impersonating: the rights in question are USER's."""
        return f"context {self.context}, as {self.acting}" if self.acting else f"context {self.context}"


class ApiError(UserError):
    """The API server answered with an error status; `status` and `server_message` stay readable for callers that handle one."""

    def __init__(self, action: Action, status: int, server_message: str) -> None:
        self.action = action
        self.status = status
        self.server_message = server_message
        message, hint = _explained(action, status, server_message)
        super().__init__(message, hint)
        if status == 403:
            self.exit_status = ExitStatus.FORBIDDEN

    @property
    def refused_by_admission(self) -> bool:
        """PodSecurity, quotas and policy engines refuse a create with 400/422, or 403 naming PodSecurity."""
        return self.status in (400, 422) or (self.status == 403 and "violates PodSecurity" in self.server_message)

    def as_admission_refusal(self) -> UserError:
        singular = self.action.resource.rstrip("s")
        return UserError(f"the API server refused the {singular}: {self.server_message}", "see the message above")


class UnreachableError(UnavailableError):
    """No answer from the API server at all (network, VPN, a server restarting)."""

    def __init__(self, action: Action, cause: BaseException) -> None:
        self.cause = root_cause(cause)
        super().__init__(
            f"cannot reach the API server of context {action.context} ({action.host}): {self.cause}",
            "check the network, VPN or --context",
        )


def _explained(action: Action, status: int, reason: str) -> tuple[str, str]:
    context, verb, resource = action.context, action.verb, action.resource
    if status == 401:
        return (
            f"the API server of context {context} ({action.host}) rejected the credentials: {reason}",
            f"log in again, or check the user of context {context} in your kubeconfig",
        )
    if status == 403:
        whose = f" for {action.acting}" if action.acting else ""
        return (
            f"forbidden: cannot {verb} {resource} {action.where}of {action.of_context}: {reason}",
            f"ask for RBAC '{verb}' on '{resource}'{whose}, or run `kubectl istio-remote doctor`",
        )
    if status == 404 and f'namespaces "{action.namespace}" not found' in reason:
        return f"namespace {action.namespace} not found in context {context}", "check -i/--istio-namespace"
    named = f" {action.name}" if action.name else ""
    return f"cannot {verb} {resource}{named} {action.where}of context {context}: {reason}", ""


def server_message(body: bytes | str | None, fallback: str) -> str:
    """The `message` of the Status object the API server sends with an error, else the HTTP reason."""
    try:
        return str(json.loads(body or b"").get("message") or fallback)
    except (TypeError, ValueError, AttributeError):
        return fallback


def root_cause(error: BaseException) -> str:
    """The innermost exception's text, on one line: urllib3 wraps the reason a user needs several layers deep."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return re.sub(r"\s+", " ", str(error) or type(error).__name__)[:200]
