"""A small real HTTP server on 127.0.0.1 for the connector tests: an erase endpoint that
verifies Lethe's signature (as a receiver would) and an RFC 7009 revocation endpoint that
checks the client's credentials. Each records what it was sent; `status` scripts answers."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from shared import signing


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool  # the signature checked out (erase) or the client authenticated (revoke)

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class ConnectorServer:
    secret: str
    client_id: str
    client_secret: str
    received: list[Received] = field(default_factory=list)
    # path -> answers to give in turn (the last one repeats); 200 when none.
    status: dict[str, list[int]] = field(default_factory=dict)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                verified = outer._check(self.path, self.headers, body)
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.received.append(Received(self.path, headers, body, verified))
                answers = outer.status.get(self.path) or [200]
                code = answers.pop(0) if len(answers) > 1 else answers[0]
                if not verified:
                    code = 401
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _check(self, path: str, headers: Any, body: bytes) -> bool:
        # `headers`: the request's, looked up regardless of case
        if "revoke" in path:
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode())
            return headers.get("Authorization") == f"Basic {expected.decode()}"
        try:
            signing.verify(self.secret, headers.get(signing.HEADER), body)
        except signing.BadSignature:
            return False
        return True
