"""A short-lived CLI need not pay for cyclic garbage collection of the heap its imports build.

`launch.main` turns the collector off before importing anything; once start-up has settled (a
session is about to open, `serve` is about to listen), that heap is frozen (never scanned again)
and collection resumes for what the long-running part allocates. At exit nothing is collected:
`launch` ends the process without the interpreter's finalization. In-process callers (tests) never
turn the collector off, and nothing here changes for them.
"""

from __future__ import annotations

import gc


def defer_collection() -> None:
    gc.disable()


def settle_start_up() -> None:
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
