"""A throwaway certificate authority for the local emulators, so the real SDKs speak real TLS to 127.0.0.1."""

from __future__ import annotations

import ssl
import tempfile
from functools import cached_property
from pathlib import Path

import trustme

PROXIED_HOST = "only-via-proxy.test"  # RFC 6761: .test never resolves in DNS


class LocalCA:
    """One CA per process run; the emulators serve a leaf certificate for 127.0.0.1, localhost and
    :data:`PROXIED_HOST` (a name only the proxy emulator resolves: what a client reaches through it was proxied).

    Clients trust it through ``ca_bundle_path`` (a PEM file written to a private temporary directory), which the
    Azure transport takes as ``connection_verify`` and the Slack client as an ``ssl.SSLContext``.
    """

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="retirewatch local emulators")
        self._dir = tempfile.TemporaryDirectory(prefix="retirewatch-ca-")

    @cached_property
    def ca_bundle_path(self) -> str:
        path = Path(self._dir.name) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(path))
        return str(path)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ca.issue_cert("127.0.0.1", "localhost", PROXIED_HOST).configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle_path)

    def close(self) -> None:
        self._dir.cleanup()


_shared: LocalCA | None = None


def shared_ca() -> LocalCA:
    """The process-wide CA: every emulator started in one process is trusted through one bundle."""
    global _shared
    if _shared is None:
        _shared = LocalCA()
    return _shared
