"""Development SMTP sink: accepts every message and stores it as an .eml file.

Run: python deploy/local/smtp_sink.py --host 127.0.0.1 --port 2525 --mail-dir DIR

Each message is written as <mail_dir>/<UTC timestamp>-<uuid>.eml holding the raw message
bytes as received after DATA. Files are written under a dot-prefixed temporary name and
renamed, so anything globbing "*.eml" never sees a partial message. Names sort in arrival
order. Exits cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session


def write_message(mail_dir: Path, data: bytes) -> Path:
    """Store one message atomically and return its final path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"{stamp}-{uuid.uuid4().hex}.eml"
    tmp = mail_dir / f".{name}.tmp"
    final = mail_dir / name
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, final)
    return final


class SinkHandler:
    """aiosmtpd handler: every recipient is accepted, every message is stored."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):  # only when decode_data=True, kept for safety
            raw = raw.encode("utf-8", "surrogateescape")
        # File I/O off the loop so a slow disk does not stall other sessions.
        path = await asyncio.to_thread(write_message, self.mail_dir, raw)
        print(
            f"stored {path.name} from={envelope.mail_from} to={','.join(envelope.rcpt_tos)}",
            flush=True,
        )
        return "250 Message accepted for delivery"


def _accept_any_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    # Dev sink: services configured with SMTP credentials must still be able to send.
    return AuthResult(success=True)


async def serve(host: str, port: int, mail_dir: Path) -> None:
    handler = SinkHandler(mail_dir)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="lethe-smtp-sink",
            data_size_limit=64 * 1024 * 1024,
            authenticator=_accept_any_login,
            auth_require_tls=False,
        )

    server = await loop.create_server(factory, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"SMTP sink listening on {host}:{port}, writing to {mail_dir}", flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
    print("SMTP sink stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="SMTP sink writing .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mail-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    mail_dir: Path = args.mail_dir.resolve()
    mail_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.host, args.port, mail_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
