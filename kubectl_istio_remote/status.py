"""Exit codes of every command, in one place (after httpie's ExitStatus)."""

from enum import IntEnum


class ExitStatus(IntEnum):
    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    UNAVAILABLE = 3
    TIMEOUT = 4
    FORBIDDEN = 5
    ERROR_CTRL_C = 130
