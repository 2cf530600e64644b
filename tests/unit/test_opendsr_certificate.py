"""The OpenDSR processor certificate (spec sections 4.1, 6.3, 8.3): an X.509 certificate for
the signing key, issued for the processor domain; intake refuses to start otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from services.intake import opendsr
from services.intake.runtime import opendsr_identity
from services.intake.settings import IntakeSettings
from shared.startup import StartupError
from tests.production import PRODUCTION_SECRETS

pytestmark = pytest.mark.unit
DOMAIN = "example-processor.com"  # the specification's processor


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return opendsr.load_signing_key(opendsr.new_signing_key_pem().decode(), None)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return opendsr.load_signing_key(opendsr.new_signing_key_pem().decode(), None)


def _ca_style(key: rsa.RSAPrivateKey, names: list[str], *, days: int = 90) -> bytes:
    """A certificate as a CA issues one: SAN DNS names, signed by another key (the CA)."""
    ca = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(ca, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_the_dev_certificate_is_x509_for_the_key_and_domain(key: rsa.RSAPrivateKey) -> None:
    pem = opendsr.processor_certificate(key, DOMAIN, None, development=True)
    cert = opendsr.check_certificate(pem, key, DOMAIN)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == DOMAIN
    body = b'{"request_status":"pending"}'
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert opendsr.verify(public, body, opendsr.sign(key, body))  # what a controller checks
    local = opendsr.processor_certificate(key, "127.0.0.1", None, development=True)
    assert opendsr.check_certificate(local, key, "127.0.0.1")


def test_a_configured_certificate_is_taken_as_is(key: rsa.RSAPrivateKey) -> None:
    pem = _ca_style(key, ["dsr.example.com", f"*.{DOMAIN}"])
    assert opendsr.processor_certificate(key, f"dsr.{DOMAIN}", pem, development=False) == pem
    assert opendsr.processor_certificate(key, "dsr.example.com", pem, development=False) == pem


def test_production_needs_a_certificate(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(opendsr.NotConfigured, match="LETHE_OPENDSR_CERTIFICATE_FILE"):
        opendsr.processor_certificate(key, DOMAIN, None, development=False)


@pytest.mark.parametrize(
    "names, domain, words",
    [
        ([DOMAIN], "other-processor.com", "not for the processor domain 'other-processor.com'"),
        ([f"*.{DOMAIN}"], DOMAIN, "issued for \\*.example-processor.com"),
        ([f"*.{DOMAIN}"], f"a.b.{DOMAIN}", "not for the processor domain"),
    ],
)
def test_a_certificate_for_another_domain_is_refused(
    key: rsa.RSAPrivateKey, names: list[str], domain: str, words: str
) -> None:
    with pytest.raises(opendsr.NotConfigured, match=words):
        opendsr.check_certificate(_ca_style(key, names), key, domain)


def test_a_certificate_for_another_key_or_not_a_certificate_is_refused(
    key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(opendsr.NotConfigured, match="not for the signing key"):
        opendsr.check_certificate(_ca_style(other_key, [DOMAIN]), key, DOMAIN)
    with pytest.raises(opendsr.NotConfigured, match=r"not a PEM X\.509 certificate"):
        opendsr.check_certificate(opendsr.public_key_pem(key), key, DOMAIN)
    with pytest.raises(opendsr.NotConfigured, match="valid only from"):
        opendsr.check_certificate(_ca_style(key, [DOMAIN], days=-1), key, DOMAIN)


def test_intake_refuses_to_start_on_a_certificate_that_does_not_match(
    tmp_path: Path, key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey
) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file = tmp_path / "cert.pem"

    def settings(**kw: Any) -> IntakeSettings:
        return IntakeSettings(
            opendsr_signing_key_file=key_file, opendsr_processor_domain=DOMAIN, **kw
        )

    assert opendsr_identity(IntakeSettings()) == (None, None)  # OpenDSR not set up
    loaded, pem = opendsr_identity(settings())  # development: self-signed
    assert loaded is not None and pem is not None and b"BEGIN CERTIFICATE" in pem
    cert_file.write_bytes(_ca_style(other_key, [DOMAIN]))
    with pytest.raises(StartupError, match="OpenDSR: the OpenDSR certificate is not for the"):
        opendsr_identity(settings(opendsr_certificate_file=cert_file))
    cert_file.write_bytes(_ca_style(key, ["elsewhere.example"]))
    with pytest.raises(StartupError, match="not for the processor domain"):
        opendsr_identity(settings(opendsr_certificate_file=cert_file))
    production = {"env": "production", **PRODUCTION_SECRETS}
    with pytest.raises(StartupError, match="set LETHE_OPENDSR_CERTIFICATE_FILE"):
        opendsr_identity(settings(**production))
    cert_file.write_bytes(_ca_style(key, [DOMAIN]))
    assert opendsr_identity(settings(opendsr_certificate_file=cert_file, **production))[1]
