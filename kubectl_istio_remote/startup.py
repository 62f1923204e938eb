"""A short-lived CLI need not pay for cyclic garbage collection of the heap its imports build.

`launch.main` turns the collector off before importing anything; once start-up has settled (a
session is about to open, `serve` is about to listen), that heap is frozen (never scanned again)
and collection resumes for what the long-running part allocates. At exit the heap is frozen again,
so the interpreter's final collection has nothing to walk. In-process callers (tests) never turn
the collector off, and nothing here changes for them.
"""

from __future__ import annotations

import atexit
import gc


def defer_collection() -> None:
    gc.disable()
    atexit.register(gc.freeze)


def settle_start_up() -> None:
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
