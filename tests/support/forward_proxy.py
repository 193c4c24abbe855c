"""A forward proxy for testing the action behind HTTP_PROXY / HTTPS_PROXY.

`ForwardProxy` listens on 127.0.0.1 and does what a corporate proxy does: an
absolute-form request (`POST http://host:port/path HTTP/1.1`) is sent on to
the origin with `http.client` and the answer relayed with its length (the
client's connection stays open); `CONNECT host:port` gets `200 Connection
established`, then bytes are pumped both ways, unread, until either side
closes. Each request is recorded as a `Seen` (with the bytes the client sent
into a tunnel), so a test can tell what went through the proxy and what the
proxy could read. `hosts` maps names to addresses, as the proxy's DNS would.

    with ForwardProxy() as proxy:
        ... run the action with HTTP_PROXY=proxy.url ...
        [(s.method, s.target) for s in proxy.seen]
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from support.loopback import LoopbackHTTPServer, LoopbackServer, QuietHandler

# Headers for this hop only (RFC 9110, 7.6.1), never passed on.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length"})


@dataclass
class Seen:
    method: str
    # The request target: `http://host:port/path?query`, or `host:port` for CONNECT.
    target: str
    headers: dict[str, str]  # names in lowercase
    body: bytes = b""
    # CONNECT only: what the client sent into the tunnel.
    tunnelled: bytearray = field(default_factory=bytearray)

    def readable(self) -> str:
        """Everything the proxy could read of this request, as text."""
        raw = self.body + b"\n" + bytes(self.tunnelled)
        return f"{self.method} {self.target}\n{self.headers!r}\n{raw.decode(errors='replace')}"


class _Handler(QuietHandler):
    server: LoopbackServer[ForwardProxy]

    def _record(self) -> Seen:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length and self.command != "CONNECT" else b""
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.owner.record(seen)
        return seen

    def _forward(self) -> None:
        seen = self._record()
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            self._reply(400, b"absolute-form http:// target expected")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(self.server.owner.address(url.hostname), url.port or 80, timeout=60)
        try:
            path = url.path + (f"?{url.query}" if url.query else "")
            upstream.request(self.command, path or "/", body=seen.body or None, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        except (OSError, http.client.HTTPException):
            self._reply(502, b"origin unreachable")
            return
        finally:
            upstream.close()
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP | {"server", "date"}:
                self.send_header(name, value)
        self._reply(None, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def _reply(self, status: int | None, body: bytes) -> None:
        if status is not None:
            self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        seen = self._record()
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((self.server.owner.address(host.strip("[]")), int(port)), 10)
        except (OSError, ValueError):
            self._reply(502, b"origin unreachable")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        # Clients wait for the 200 before they send: rfile holds nothing yet.
        with upstream:
            _pump(self.connection, upstream, seen.tunnelled)


def _pump(client: socket.socket, upstream: socket.socket, sent: bytearray) -> None:
    """Copy bytes both ways until either side closes (or 30 s of silence)."""
    while readable := select.select([client, upstream], [], [], 30)[0]:
        for source in readable:
            try:
                data = source.recv(65536)
                (upstream if source is client else client).sendall(data)
            except OSError:
                return
            if not data:
                return
            if source is client:
                sent.extend(data)


class ForwardProxy(LoopbackHTTPServer):
    """A recording forward proxy on 127.0.0.1 (see the module docstring)."""

    def __init__(self, hosts: dict[str, str] | None = None) -> None:
        self.hosts = hosts or {}
        self._seen: list[Seen] = []
        self._lock = threading.Lock()
        super().__init__(_Handler, "forward-proxy")

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def address(self, host: str) -> str:
        return self.hosts.get(host.lower(), host)
