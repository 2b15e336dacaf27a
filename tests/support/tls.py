"""Test certificate authorities made on the spot with the ``openssl`` command (the dev
dependencies have no ``cryptography``): a CA, and a server certificate it signs."""

from __future__ import annotations

__all__ = ["make_ca", "server_certificate"]

import subprocess
from pathlib import Path

from support.servers.rabbitmq import TLSFiles

#: Certificates live two days: long enough for any test session, useless afterwards.
_DAYS = "2"


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA called ``name`` in ``folder``: (its certificate, its private key)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _openssl(
        folder,
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", _DAYS,
        "-keyout", key.name, "-out", cert.name, "-subj", f"/CN={name}",
    )  # fmt: skip
    return cert, key


def server_certificate(folder: Path, ca: tuple[Path, Path], *, host: str = "127.0.0.1") -> TLSFiles:
    """A certificate for ``host`` (an IP address) signed by ``ca``, with its key and CA."""
    ca_cert, ca_key = ca
    folder.mkdir(parents=True, exist_ok=True)
    csr = folder / "server.csr"
    _openssl(
        folder,
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
        "-out", csr.name, "-subj", f"/CN={host}",
    )  # fmt: skip
    (folder / "san.cnf").write_text(f"subjectAltName=IP:{host}\n")
    _openssl(
        folder,
        "x509", "-req", "-in", csr.name, "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", "server.pem", "-days", _DAYS, "-extfile", "san.cnf",
    )  # fmt: skip
    return TLSFiles(ca=ca_cert, cert=folder / "server.pem", key=folder / "server.key")
