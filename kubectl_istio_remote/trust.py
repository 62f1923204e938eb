"""Verifying TLS clients that trust what Go's verifier trusts (kubectl's, istioctl's): one place for the difference."""

from __future__ import annotations

import ssl


def verifying_context(*, cafile: str | None = None, cadata: str | None = None) -> ssl.SSLContext:
    """A client context verifying against `cafile`/`cadata` (else the system's roots). Python 3.13 made X.509
    verification strict by default, refusing e.g. a cluster CA without an Authority Key Identifier that kubectl trusts."""
    context = ssl.create_default_context(cafile=cafile, cadata=cadata)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context
