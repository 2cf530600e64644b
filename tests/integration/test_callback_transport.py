"""The guarded callback transport against real local servers: it dials the address it
checked, keeps the name for Host, SNI and certificate checks, refuses internal targets in
production, and holds a delivery no longer than its total deadline."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.netguard import CallbackRefused, GuardedTransport, Policy, post_within
from shared.netguard.guard import system_resolver

pytestmark = pytest.mark.integration

NAME = "callbacks.test"  # resolves only through the tests' resolver


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Server:
    """An HTTPS callback receiver on 127.0.0.1 recording Host, SNI and body."""

    def __init__(self, tmp: Path, *, trickle: bool = False) -> None:
        self.cert, key = _certificate(tmp, NAME)
        self.seen: list[dict[str, Any]] = []
        outer = self
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.cert, key)
        sni: list[str | None] = []

        def record_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            sni.append(name)

        tls.sni_callback = record_sni

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.seen.append({"host": self.headers["host"], "sni": sni[-1], "body": body})
                self.send_response(200)
                self.send_header("content-length", "100")
                self.end_headers()
                try:
                    for _ in range(100 if trickle else 1):  # a byte every 0.1 s: 10 s in all
                        self.wfile.write(b"x" if trickle else b"x" * 100)
                        self.wfile.flush()
                        if trickle:
                            time.sleep(0.1)
                except OSError:  # the client gave up (the deadline test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def client_tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.server.shutdown()


def _rebinding(first: str, then: str) -> Any:
    answers = iter([[first]])

    async def resolve(host: str, port: int) -> list[str]:
        assert host in (NAME, "other.test")
        return next(answers, [then])

    return resolve


async def test_a_callback_reaches_the_checked_address_under_its_own_name(
    server: Server,
) -> None:
    """Dev allow-list for loopback; the resolver answers 127.0.0.1 once, then the metadata
    address: the POST reaches our server, with Host and SNI the callback's name."""
    policy = Policy.from_list(["127.0.0.0/8"])
    policy = Policy(allowed=policy.allowed, resolver=_rebinding("127.0.0.1", "169.254.169.254"))
    transport = GuardedTransport(policy, verify=server.client_tls())
    async with httpx.AsyncClient(transport=transport) as client:
        url = f"https://{NAME}:{server.port}/cb"
        r = await post_within(client, url, 5, content=b'{"status":"completed"}')
        assert r.status_code == 200
        assert server.seen == [
            {"host": f"{NAME}:{server.port}", "sni": NAME, "body": b'{"status":"completed"}'}
        ]
        # Asked again, the name now points at the metadata address: refused, not sent.
        with pytest.raises(CallbackRefused, match="cloud metadata address"):
            await client.post(f"https://{NAME}:{server.port}/again", content=b"{}")
    assert len(server.seen) == 1


async def test_the_certificate_is_checked_against_the_name_not_the_address(
    server: Server,
) -> None:
    resolver = _rebinding("127.0.0.1", "127.0.0.1")
    policy = Policy(allowed=Policy.from_list(["127.0.0.0/8"]).allowed, resolver=resolver)
    transport = GuardedTransport(policy, verify=server.client_tls())
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|match"):
            await client.post(f"https://other.test:{server.port}/cb", content=b"{}")
    assert server.seen == []


async def test_production_refuses_loopback_names_and_numbers(server: Server) -> None:
    transport = GuardedTransport(Policy(), verify=server.client_tls())
    urls = [
        f"https://localhost.:{server.port}/cb",
        f"https://127.1:{server.port}/cb",
        f"https://2130706433:{server.port}/cb",
        f"https://0x7f000001:{server.port}/cb",
        f"https://[::ffff:127.0.0.1]:{server.port}/cb",
    ]
    # Names the OS itself resolves to loopback (/etc/hosts), refused on their answer.
    for name in (socket.gethostname(), "ip6-localhost", "localhost6"):
        try:
            answers = await system_resolver(name, server.port)
        except OSError:
            continue
        if answers and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in answers):
            urls.append(f"https://{name}:{server.port}/cb")
    async with httpx.AsyncClient(transport=transport) as client:
        for url in urls:
            with pytest.raises(CallbackRefused) as exc:
                await client.post(url, content=b"{}")
            assert "loopback" in exc.value.rule or "internal host name" in exc.value.rule, url
    assert server.seen == []


async def test_a_trickling_endpoint_is_cut_off_at_the_total_deadline(tmp_path: Path) -> None:
    """Each byte arrives well within the read timeout; the whole answer would take 10 s."""
    slow = Server(tmp_path, trickle=True)
    try:
        policy = Policy(
            allowed=Policy.from_list(["127.0.0.0/8"]).allowed,
            resolver=_rebinding("127.0.0.1", "127.0.0.1"),
        )
        transport = GuardedTransport(policy, verify=slow.client_tls())
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await post_within(client, f"https://{NAME}:{slow.port}/cb", 1.0, content=b"{}")
            assert time.monotonic() - started < 2.5
    finally:
        await asyncio.to_thread(slow.server.shutdown)
