"""gRPC channels to a control plane, addressed as the official CLI does (http:// or https://)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import grpc

# Large pages of task details exceed gRPC's 4 MiB default.
CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.keepalive_time_ms", 30_000),
)


class EndpointError(ValueError):
    """An endpoint or TLS file that cannot be used."""


@dataclass(frozen=True)
class Endpoint:
    """Where the control plane listens, and whether TLS is on (the https scheme)."""

    url: str
    target: str
    secure: bool


def parse_endpoint(url: str) -> Endpoint:
    """Parse `http://host:port` or `https://host:port`; a scheme is required, as in the CLI."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise EndpointError(f"expected http://host:port or https://host:port, got {url!r}")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise EndpointError(f"invalid port in {url!r}") from None
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return Endpoint(url=url, target=f"{host}:{port}", secure=parsed.scheme == "https")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for TLS: the authority to trust, and a client certificate and key for mTLS."""

    certificate_authority: Path | None = None
    client_certificate: Path | None = None
    client_key: Path | None = None

    def check(self) -> None:
        """Refuse files that hold no PEM certificate or key: gRPC would only log and retry."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.certificate_authority is not None:
            try:
                context.load_verify_locations(cafile=self.certificate_authority)
            except ssl.SSLError:
                raise EndpointError(f"--certificate-authority: {self.certificate_authority} "
                                    "holds no PEM certificate") from None
        if self.client_certificate is not None and self.client_key is not None:
            try:  # an encrypted key is refused too: gRPC takes none
                context.load_cert_chain(self.client_certificate, self.client_key,
                                        password=lambda: b"")
            except ssl.SSLError:
                raise EndpointError(
                    f"--client-certificate/--client-key: {self.client_certificate} and "
                    f"{self.client_key} are not a PEM certificate and its unencrypted key"
                ) from None

    def credentials(self) -> grpc.ChannelCredentials:
        """Read the files into channel credentials."""
        if (self.client_certificate is None) != (self.client_key is None):
            raise EndpointError("--client-certificate and --client-key go together")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.certificate_authority),
            private_key=_read(self.client_key),
            certificate_chain=_read(self.client_certificate),
        )


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise EndpointError(f"cannot read {path}: {error.strerror}") from None


class ChannelFactory:
    """Builds a fresh asyncio channel each call; the retry policy rebuilds after UNAVAILABLE."""

    def __init__(self, endpoint: Endpoint, tls: TlsFiles | None = None) -> None:
        self.endpoint = endpoint
        self._credentials = (tls or TlsFiles()).credentials() if endpoint.secure else None

    def __call__(self) -> grpc.aio.Channel:
        """Open a new channel."""
        if self._credentials is None:
            return grpc.aio.insecure_channel(self.endpoint.target, options=CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(
            self.endpoint.target, self._credentials, options=CHANNEL_OPTIONS
        )
