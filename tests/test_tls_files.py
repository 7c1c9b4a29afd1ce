"""TLS files are checked at start-up: a file that holds no PEM certificate or key is one line
and exit 2, not gRPC's repeated C-core errors while the exporter retries for ever."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_cli_serve import assert_one_line_error, serve

from armonik_observe.collectors.channel import EndpointError, TlsFiles

HTTPS = "https://127.0.0.1:1"


def write_certificate(directory: Path, *, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """A self-signed certificate and its key, as PEM files; the key encrypted if asked."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "armonik-observe test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    certificate_path, key_path = directory / "cert.pem", directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, encryption))
    return certificate_path, key_path


def test_pem_files_pass_the_check(tmp_path: Path) -> None:
    certificate, key = write_certificate(tmp_path)
    TlsFiles(certificate, certificate, key).check()  # raises if refused
    assert TlsFiles(certificate, certificate, key).credentials() is not None


def test_an_encrypted_key_is_refused(tmp_path: Path) -> None:
    certificate, key = write_certificate(tmp_path, passphrase=b"secret")
    with pytest.raises(EndpointError, match="unencrypted key"):
        TlsFiles(None, certificate, key).check()


def test_a_file_without_a_certificate_is_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("garbage\n")
    result = serve("-e", HTTPS, "--certificate-authority", str(garbage))
    assert_one_line_error(result, "--certificate-authority", str(garbage), "no PEM certificate")


def test_a_client_key_that_does_not_match_is_one_line(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    certificate, _ = write_certificate(first)
    _, other_key = write_certificate(second)
    result = serve("-e", HTTPS, "--client-certificate", str(certificate),
                   "--client-key", str(other_key))
    assert_one_line_error(result, "--client-certificate", "--client-key")
