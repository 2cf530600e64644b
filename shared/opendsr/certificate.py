"""The processor certificate (sections 4.1, 6.3): the configured one, checked against the
signing key and the processor domain, or a self-signed one in development."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.opendsr.signing import NotConfigured


def dev_certificate(key: rsa.RSAPrivateKey, domain: str, *, days: int = 365) -> bytes:
    """A self-signed X.509 certificate for the signing key, issued for `domain` (development
    and tests; production configures a CA-issued one: `LETHE_OPENDSR_CERTIFICATE_FILE`)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(domain))
    except ValueError:
        alt = x509.DNSName(domain)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if not names:  # no SAN: the subject's common name (older certificates)
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def _covers(pattern: str, domain: str) -> bool:
    pattern, domain = pattern.lower().rstrip("."), domain.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = domain.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == domain


def check_certificate(pem: bytes, key: rsa.RSAPrivateKey, domain: str) -> x509.Certificate:
    """The processor's certificate, checked: X.509, for the signing key, issued for the
    domain in `X-OpenDSR-Processor-Domain` (section 8.3) and currently valid. `NotConfigured`
    names what does not match."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise NotConfigured(
            "the OpenDSR certificate is not a PEM X.509 certificate "
            "(LETHE_OPENDSR_CERTIFICATE_FILE)"
        ) from None
    public = cert.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise NotConfigured(
            "the OpenDSR certificate is not for the signing key: its public key differs from "
            "LETHE_OPENDSR_SIGNING_KEY(_FILE)'s"
        )
    names = _names(cert)
    if not any(_covers(n, domain) for n in names):
        raise NotConfigured(
            f"the OpenDSR certificate is issued for {', '.join(names) or 'no name'}, not for "
            f"the processor domain {domain!r} (LETHE_OPENDSR_PROCESSOR_DOMAIN)"
        )
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise NotConfigured(
            f"the OpenDSR certificate is valid only from {cert.not_valid_before_utc:%Y-%m-%d} "
            f"to {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    return cert


def processor_certificate(
    key: rsa.RSAPrivateKey, domain: str, configured: bytes | None, *, development: bool
) -> bytes:
    """The certificate `/opendsr/cert.pem` publishes: the configured one, checked; in
    development without one, a self-signed one. Production without one is refused."""
    if configured is None:
        if not development:
            raise NotConfigured(
                "OpenDSR needs the processor's X.509 certificate for its signing key and "
                f"domain {domain!r}: set LETHE_OPENDSR_CERTIFICATE_FILE"
            )
        configured = dev_certificate(key, domain)
    check_certificate(configured, key, domain)
    return configured
