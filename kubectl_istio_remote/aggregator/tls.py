"""Serving TLS: a certificate made in memory for a session (no key material in a file or an image), or the
operator's from files, served anew when they are renewed."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

VALIDITY = datetime.timedelta(days=30)


def self_signed_pair(dns_names: Sequence[str], ip_addresses: Sequence[str]) -> tuple[bytes, bytes]:
    """Return (key PEM, certificate PEM) for a fresh P-256 key valid for the given names."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


#: How often the serving certificate's files are read again: a renewed Secret is served well within a minute.
ROTATION_POLL_SECONDS = 10.0


class CertificateProblem(ValueError):
    """The files do not hold a usable serving pair; the message says why."""


def read_pair(certificate_file: str, key_file: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) from the files, once they parse and the key is the certificate's."""
    try:
        with open(certificate_file, "rb") as handle:
            certificate_pem = handle.read()
        with open(key_file, "rb") as handle:
            key_pem = handle.read()
    except OSError as error:
        raise CertificateProblem(f"cannot read {error.filename}: {error.strerror}") from None
    try:
        chain = x509.load_pem_x509_certificates(certificate_pem)
    except ValueError as error:
        raise CertificateProblem(f"{certificate_file} holds no PEM certificate ({error})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise CertificateProblem(f"{key_file} holds no unencrypted PEM private key ({error})") from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise CertificateProblem(f"the key in {key_file} is not the key of the certificate in {certificate_file}")
    return key_pem, certificate_pem


def describe(certificate_pem: bytes) -> str:
    """serial and expiry, for the log line that says which certificate is served."""
    certificate = x509.load_pem_x509_certificates(certificate_pem)[0]
    return f"serial {certificate.serial_number:x}, valid until {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"


class RotatingCertificate:
    """The serving certificate of `serve --tls-cert/--tls-key`, read again whenever the files change.

    cert-manager renews the Secret and the kubelet swaps the mounted files (its `..data` symlink
    renamed over); gRPC asks us for the certificate of each new connection, so a renewal is served
    from the next connection on, and calls in flight keep theirs. A pair that does not load (half
    written, or a key of another certificate) keeps the one served and is logged once.
    """

    def __init__(self, certificate_file: str, key_file: str) -> None:
        self._files = (certificate_file, key_file)
        self.pair = read_pair(certificate_file, key_file)
        self._pending: object | None = None
        self._refused: str = ""

    def credentials(self) -> object:
        """gRPC server credentials that take a renewed pair for the next handshake."""
        import grpc

        return grpc.dynamic_ssl_server_credentials(grpc.ssl_server_certificate_configuration([self.pair]), self._renewal)

    def _renewal(self) -> object | None:
        """gRPC's question before each handshake: a new configuration, once, or None to keep the current one."""
        pending, self._pending = self._pending, None
        return pending

    def check(self) -> bool:
        """Read the files again; True when a renewed pair will be served."""
        import grpc

        try:
            pair = read_pair(*self._files)
        except CertificateProblem as problem:
            if str(problem) != self._refused:
                self._refused = str(problem)
                log.warning("kept the serving certificate (%s): %s", describe(self.pair[1]), problem)
            return False
        self._refused = ""
        if pair == self.pair:
            return False
        self.pair = pair
        self._pending = grpc.ssl_server_certificate_configuration([pair])
        log.info("serving the renewed certificate from %s: %s", self._files[0], describe(pair[1]))
        return True

    async def follow(self) -> None:
        """Check the files every ROTATION_POLL_SECONDS until cancelled."""
        while True:
            await asyncio.sleep(ROTATION_POLL_SECONDS)
            self.check()
