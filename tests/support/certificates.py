"""Throwaway certificates for TLS tests, made with the `openssl` command (Debian's, installed by
`make setup`): a CA, a server certificate for localhost and 127.0.0.1, a client certificate."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Authority:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _signed(folder: Path, name: str, subject: str, ca: Path, ca_key: Path, ext: str) -> None:
    key, csr, cert = (folder / f"{name}.{s}" for s in ("key", "csr", "pem"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", subject)  # fmt: skip
    (folder / f"{name}.ext").write_text(ext + "\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2",
             "-extfile", str(folder / f"{name}.ext"))  # fmt: skip


def make_authority(folder: Path, name: str) -> Authority:
    """A CA called `name` under `folder`, with one server and one client certificate."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing: run `make setup` (it installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / f"{name}-ca.pem", folder / f"{name}-ca.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
             "-out", str(ca), "-days", "2", "-subj", f"/CN={name} test CA")  # fmt: skip
    _signed(folder, f"{name}-server", "/CN=localhost", ca, ca_key,
            "subjectAltName=DNS:localhost,IP:127.0.0.1")  # fmt: skip
    _signed(folder, f"{name}-client", f"/CN={name} client", ca, ca_key,
            "extendedKeyUsage=clientAuth")  # fmt: skip
    return Authority(
        ca=ca,
        server_cert=folder / f"{name}-server.pem",
        server_key=folder / f"{name}-server.key",
        client_cert=folder / f"{name}-client.pem",
        client_key=folder / f"{name}-client.key",
    )
