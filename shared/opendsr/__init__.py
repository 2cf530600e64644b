"""OpenDSR (formerly OpenGDPR), what both sides of Lethe speak: statuses, bodies, signing.

Specification: https://github.com/opengdpr/OpenDSR/blob/master/specification.md (v2.0; the
v1 text, named OpenGDPR, is on the `opengdpr_v1` branch). Section links below point there.

- A Lethe job status becomes an OpenDSR `request_status` (section 8).
- Responses (intake) and callbacks (notifier) are signed with the processor's RSA key:
  RSA-SHA256 (PKCS#1 v1.5) over the raw body bytes, base64, in `X-OpenDSR-Signature` (and the
  older `X-OpenGDPR-Signature`), with the domain in `X-OpenDSR-Processor-Domain` (sections
  4.2, 8.3, 8.6, 10.1).

The request side (parsing, mapping identities to a Lethe request) is intake's:
services/intake/opendsr.py. Nothing here touches HTTP, Kafka or the database.

- `protocol`: versions, identities, bodies;
- `statuses`: Lethe job statuses as OpenDSR request statuses;
- `signing`: the processor's key, signatures and signed headers;
- `certificate`: the processor certificate.
"""

from shared.opendsr.certificate import check_certificate, dev_certificate, processor_certificate
from shared.opendsr.protocol import (
    API_VERSION,
    IDENTITIES,
    REQUEST_TYPES,
    SPEC,
    SUPPORTED_MAJOR_VERSIONS,
    JobFacts,
    callback_body,
    discovery,
    dumps,
    error_body,
    rfc3339,
    status_body,
    with_processor_signature,
)
from shared.opendsr.signing import (
    DOMAIN_HEADERS,
    SIGNATURE_HEADERS,
    NotConfigured,
    load_signing_key,
    new_signing_key_pem,
    public_key_pem,
    sign,
    signed_headers,
    verify,
)
from shared.opendsr.statuses import (
    RECEIVED,
    REQUEST_STATUS,
    RequestStatus,
    request_status,
    status_after,
    status_changes,
)

__all__ = [
    "API_VERSION",
    "DOMAIN_HEADERS",
    "IDENTITIES",
    "RECEIVED",
    "REQUEST_STATUS",
    "REQUEST_TYPES",
    "SIGNATURE_HEADERS",
    "SPEC",
    "SUPPORTED_MAJOR_VERSIONS",
    "JobFacts",
    "NotConfigured",
    "RequestStatus",
    "callback_body",
    "check_certificate",
    "dev_certificate",
    "discovery",
    "dumps",
    "error_body",
    "load_signing_key",
    "new_signing_key_pem",
    "processor_certificate",
    "public_key_pem",
    "request_status",
    "rfc3339",
    "sign",
    "signed_headers",
    "status_after",
    "status_body",
    "status_changes",
    "verify",
    "with_processor_signature",
]
