"""TLS for the gateway: its public port, optionally mutual, and optionally to the backend.

The server's certificate and key (and, for mutual TLS, the CA that signs clients' certificates)
are read from files, and read again at the first handshake after any of them changes, so a
rotated certificate (a Kubernetes Secret update, cert-manager) is served without a restart. A
half-written set of files (a rotation in progress) keeps the previous certificate and logs it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


class CertificateFiles:
    """The server's certificate files, and the configuration read from them last."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self._paths = tuple(p for p in (cert, key, client_ca) if p is not None)
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._seen: tuple[tuple[int, int], ...] | None = None
        self.reloads = 0

    def first(self) -> grpc.ServerCertificateConfiguration:
        """The configuration to start with; OSError/ValueError when the files are unusable."""
        configuration = self._read()
        self._seen = self._stamp()
        return configuration

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """For gRPC at each handshake: a new configuration when the files changed, else None."""
        try:
            stamp = self._stamp()
            if stamp == self._seen:
                return None
            configuration = self._read()
        except (OSError, ValueError) as error:
            log.warning("TLS files unusable, keeping the previous certificate: %s", error)
            return None
        self._seen = stamp
        self.reloads += 1
        log.info("TLS certificate read again from %s", self._cert)
        return configuration

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        return tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in self._paths)

    def _read(self) -> grpc.ServerCertificateConfiguration:
        cert, key = self._cert.read_bytes(), self._key.read_bytes()
        if b"CERTIFICATE" not in cert or b"PRIVATE KEY" not in key:
            raise ValueError(f"{self._cert} / {self._key} are not a PEM certificate and key")
        client_ca = self._client_ca.read_bytes() if self._client_ca is not None else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)


def server_credentials(files: CertificateFiles, *, mutual: bool) -> grpc.ServerCredentials:
    # gRPC keeps the current configuration when the fetcher returns None (its documentation);
    # the type stubs do not say so.
    return grpc.dynamic_ssl_server_credentials(
        files.first(),
        files.fetch,  # type: ignore[arg-type]
        require_client_authentication=mutual,
    )


def backend_credentials(ca_file: Path) -> grpc.ChannelCredentials:
    """TLS to the backend, trusting the CA in `ca_file`."""
    return grpc.ssl_channel_credentials(root_certificates=ca_file.read_bytes())
