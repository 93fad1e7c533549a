"""TLS and mTLS for every fluid server and channel, from ``FLUID_TLS_*`` variables.

One set of variables configures both sides of a process, since most fluid processes
serve and call (the dispatcher serves clients and calls history):

- ``FLUID_TLS_CERT_FILE`` and ``FLUID_TLS_KEY_FILE``: the server's certificate (PEM,
  chain allowed) and key; on a channel, the client certificate it presents (mTLS).
- ``FLUID_TLS_CA_FILE``: the CA certificates that verify the peer. On a server with a
  certificate it makes client certificates required (mTLS); on a channel it verifies the
  server (without it, the system's roots do).
- ``FLUID_TLS_SERVER_NAME``: the name a channel checks the server's certificate against,
  when it is not the host of the address (an IP, a headless Service's pod name).

Nothing set: servers listen and channels connect in plaintext, as before TLS existed.

A server re-reads its files when they change (cert-manager rotates them in place): the
next connection is handshaken with the new certificate, without a restart. A channel
reads its files once, when it is opened.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from fluid.scheduler.errors import FluidError

from .settings import FluidBaseSettings

logger = logging.getLogger("fluid.tls")

CERT_VARIABLE = "FLUID_TLS_CERT_FILE"
KEY_VARIABLE = "FLUID_TLS_KEY_FILE"
CA_VARIABLE = "FLUID_TLS_CA_FILE"


class TlsConfigError(FluidError, ValueError):
    """The ``FLUID_TLS_*`` variables or the files they name cannot be used.

    A ``ValueError`` so that ``fluid serve`` reports it as a bad setting at start-up, a
    ``FluidError`` so that the CLI's client commands print it as one line."""

    code = "FAILED_PRECONDITION"


class TlsSettings(FluidBaseSettings):
    """The ``FLUID_TLS_*`` variables; empty means not set."""

    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    tls_server_name: str = ""

    # The key counts as well as the certificate: one set without the other is refused
    # (by _load) rather than quietly left plaintext.
    @property
    def serves_tls(self) -> bool:
        return bool(self.tls_cert_file or self.tls_key_file)

    @property
    def dials_tls(self) -> bool:
        # A client certificate is only ever sent over TLS, so any variable turns it on.
        return bool(self.tls_ca_file or self.serves_tls)


@dataclass(frozen=True, slots=True)
class _Material:
    """The PEM bytes read from the files, checked to be what their variables promise."""

    certificate_chain: bytes | None
    private_key: bytes | None
    root_certificates: bytes | None


def _read(variable: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise TlsConfigError(f"{variable}={path}: cannot read it ({error.strerror})") from None


def _certificates(variable: str, path: str, data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsConfigError(f"{variable}={path}: not a PEM certificate") from None


def _public_key(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load(settings: TlsSettings) -> _Material:
    """Read and check the files, so that a mistake is one clear error here rather than
    a failed handshake later, whose log names neither the variable nor the file."""
    cert_path, key_path, ca_path = (
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_ca_file,
    )
    if bool(cert_path) != bool(key_path):
        present, missing = (
            (CERT_VARIABLE, KEY_VARIABLE) if cert_path else (KEY_VARIABLE, CERT_VARIABLE)
        )
        raise TlsConfigError(f"{present} is set but {missing} is not: set both or neither")
    chain = key = roots = None
    if cert_path:
        chain, key = _read(CERT_VARIABLE, cert_path), _read(KEY_VARIABLE, key_path)
        leaf = _certificates(CERT_VARIABLE, cert_path, chain)[0]
        try:
            private = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # TypeError: the key is encrypted; gRPC takes only unencrypted keys.
            raise TlsConfigError(
                f"{KEY_VARIABLE}={key_path}: not an unencrypted PEM private key"
            ) from None
        if _public_key(private.public_key()) != _public_key(leaf.public_key()):
            raise TlsConfigError(
                f"{KEY_VARIABLE}={key_path} is not the key of {CERT_VARIABLE}={cert_path}"
            )
    if ca_path:
        roots = _read(CA_VARIABLE, ca_path)
        _certificates(CA_VARIABLE, ca_path, roots)
    return _Material(chain, key, roots)


def _server_configuration(material: _Material) -> grpc.ServerCertificateConfiguration:
    assert material.private_key is not None and material.certificate_chain is not None
    return grpc.ssl_server_certificate_configuration(
        [(material.private_key, material.certificate_chain)],
        root_certificates=material.root_certificates,
    )


class _ReloadingCertificates:
    """The configuration fetcher of ``grpc.dynamic_ssl_server_credentials``.

    gRPC calls it before every handshake, from its own thread: it answers None (keep the
    current certificate) unless a file changed. It looks at the files' stat first, which
    costs no read; a changed stat is read and checked, and a half-rotated pair (a new
    certificate beside the old key) is refused, logged and tried again at the next
    change, while the current certificate keeps serving."""

    def __init__(self, settings: TlsSettings) -> None:
        self._settings = settings
        self._paths = [
            path
            for path in (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file)
            if path
        ]
        self._lock = threading.Lock()
        self.material = _load(settings)
        # No stamp yet: the first handshake stats and reads once more, so a rotation
        # between this read and that first stat is not missed.
        self._stamp: list[tuple[int, int, int]] = []
        # Told once per distinct failure: gRPC asks again at every handshake.
        self._failure = ""

    def _stat(self) -> list[tuple[int, int, int]]:
        # Inode too: Kubernetes swaps a Secret's files by renaming a directory.
        return [
            (status.st_ino, status.st_mtime_ns, status.st_size)
            for status in (os.stat(path) for path in self._paths)
        ]

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                stamp = self._stat()
                if stamp == self._stamp:
                    return None
                self._stamp = stamp
                material = _load(self._settings)
            except (OSError, TlsConfigError) as error:
                if str(error) != self._failure:
                    self._failure = str(error)
                    logger.warning(
                        "TLS files changed but cannot be used, keeping the current ones: %s",
                        error,
                    )
                return None
            self._failure = ""
            if material == self.material:
                return None
            self.material = material
        logger.info("TLS certificate reloaded from %s", self._settings.tls_cert_file)
        return _server_configuration(material)


def add_port(server: grpc.aio.Server, address: str, settings: TlsSettings) -> int:
    """Bind ``address``: TLS when a certificate is set (mTLS when a CA is set too),
    plaintext otherwise. Returns the bound port (0 when it could not bind)."""
    if not settings.serves_tls:
        if settings.tls_ca_file:
            # Workers serve only health here and still dial the dispatcher over TLS.
            logger.warning(
                "%s is set without %s: %s is served in plaintext, only channels use TLS",
                CA_VARIABLE,
                CERT_VARIABLE,
                address,
            )
        return server.add_insecure_port(address)
    fetcher = _ReloadingCertificates(settings)
    credentials = grpc.dynamic_ssl_server_credentials(
        _server_configuration(fetcher.material),
        # gRPC documents None as "no change"; grpc-stubs types the fetcher without it.
        fetcher,  # type: ignore[arg-type]
        require_client_authentication=bool(settings.tls_ca_file),
    )
    return server.add_secure_port(address, credentials)


def create_channel(
    address: str,
    settings: TlsSettings,
    *,
    options: Sequence[tuple[str, Any]],
    interceptors: Sequence[grpc.aio.ClientInterceptor],
) -> grpc.aio.Channel:
    """A channel to ``address``: TLS when a CA or a client certificate is set, plaintext
    otherwise. The files are read now: a channel lives with the certificate it was
    opened with (gRPC offers no reloading client credentials)."""
    if not settings.dials_tls:
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
    material = _load(settings)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=material.root_certificates,
        private_key=material.private_key,
        certificate_chain=material.certificate_chain,
    )
    if settings.tls_server_name:
        options = [*options, ("grpc.ssl_target_name_override", settings.tls_server_name)]
    return grpc.aio.secure_channel(address, credentials, options=options, interceptors=interceptors)
