"""The one output channel: data on stdout, progress, warnings and errors on stderr, details with -v.

The CLI makes one Console per run and hands it to whatever reports anything (sessions,
teardown, cleanup, `serve`); nothing else prints. Library-style modules that log (the
aggregator) reach the same stream in the same format through `Console.capture_logging`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

PACKAGE_LOGGER = "kubectl_istio_remote"
AGGREGATOR_LOGGER = f"{PACKAGE_LOGGER}.aggregator"
NOISY_LOGGERS = ("websocket", "kubernetes")
TOUCHED_LOGGERS = (PACKAGE_LOGGER, AGGREGATOR_LOGGER, *NOISY_LOGGERS)


@dataclass
class Console:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    verbose: bool = False

    def data(self, text: str) -> None:
        """What the command is for (a table, a document, `listening on ...`): stdout, flushed."""
        self.stdout.write(text)
        self.stdout.flush()

    def progress(self, message: str) -> None:
        self._line(message)

    def warning(self, message: str) -> None:
        self._line(f"warning: {message}")

    def error(self, message: str) -> None:
        self._line(f"error: {message}")

    def detail(self, message: str) -> None:
        """Shown with -v only."""
        if self.verbose:
            self._line(message)

    def set_verbose(self, verbose: bool) -> None:
        self.verbose = verbose
        self.capture_logging()

    @contextlib.contextmanager
    def attached(self) -> Iterator[Console]:
        """For one run: what this console changes in the logging module is undone afterwards (in-process tests run many)."""
        saved = [(logger, logger.level, list(logger.handlers)) for logger in map(logging.getLogger, TOUCHED_LOGGERS)]
        try:
            self.capture_logging()
            yield self
        finally:
            for logger, level, handlers in saved:
                logger.setLevel(level)
                logger.handlers[:] = handlers

    def quiet_logger(self, name: str) -> None:
        """Silence a module's own warnings where the caller reports the same failures itself (unless -v)."""
        if not self.verbose:
            logging.getLogger(name).setLevel(logging.ERROR)

    def capture_logging(self) -> None:
        """Our modules' log records come out as console lines; third-party loggers stay quiet unless -v."""
        handler = _ConsoleHandler(self)
        package = logging.getLogger(PACKAGE_LOGGER)
        package.handlers[:] = [handler]
        package.setLevel(logging.INFO if self.verbose else logging.WARNING)
        # websocket-client's and the official client's (auth-providers) log lines are noise: the error that follows says it all.
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.DEBUG if self.verbose else logging.CRITICAL)

    def _line(self, text: str) -> None:
        print(text, file=self.stderr, flush=True)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: Console) -> None:
        super().__init__()
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self._console.error(message)
        elif record.levelno >= logging.WARNING:
            self._console.warning(message)
        else:
            self._console.detail(message)
