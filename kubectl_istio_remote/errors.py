"""Errors a user can act on: each carries the exit status and the next step to take."""

from kubectl_istio_remote.status import ExitStatus


class UserError(Exception):
    """A failure caused by input or environment, reported as one line plus a hint, never a traceback."""

    exit_status = ExitStatus.ERROR

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def one_line(self) -> str:
        return f"{self}; {self.hint}" if self.hint else str(self)


class UsageError(UserError):
    exit_status = ExitStatus.USAGE


class UnavailableError(UserError):
    exit_status = ExitStatus.UNAVAILABLE


class DeadlineError(UserError):
    """--timeout ran out before the session was ready."""

    exit_status = ExitStatus.TIMEOUT


class ForbiddenError(UserError):
    """Missing RBAC rights, named."""

    exit_status = ExitStatus.FORBIDDEN
