"""A small counting HTTP proxy put in front of the ZenML server.

Every request is forwarded unchanged (method, path, query, body, headers
except hop-by-hop ones) and logged with its method, path, status and the
time the server took, so the benchmark can say how many requests each
contender sends per trigger and what they are. Threaded, on the test suite's
`support.loopback` server (bench/run.py puts tests/ on `sys.path`); standard
library only (`http.server` + `http.client`).
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from support.loopback import LoopbackHTTPServer, QuietHandler

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Logged:
    started: float  # time.monotonic() when the request arrived
    seconds: float  # until the server's answer was read in full
    method: str
    path: str  # without the query
    query: str
    status: int

    @property
    def route(self) -> str:
        """`GET /api/v1/runs/{id}/status`: the path with IDs generalised."""
        return f"{self.method} {_UUID.sub('{id}', self.path)}"


class CountingProxy(LoopbackHTTPServer):
    """`with CountingProxy(upstream) as proxy:` then point clients at `proxy.url`."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http upstreams are supported, not {upstream}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        # Failed requests print their traceback (socketserver's default), as before.
        super().__init__(self._handler_class(), "counting-proxy", quiet_errors=False)

    def mark(self) -> int:
        """The log's current length, to slice out one contender's requests."""
        with self._lock:
            return len(self.log)

    def since(self, mark: int) -> list[Logged]:
        with self._lock:
            return list(self.log[mark:])

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self
        local = threading.local()

        class Handler(QuietHandler):  # logs nothing: the benchmark keeps its own log
            def _upstream(self) -> http.client.HTTPConnection:
                conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
                if conn is None:
                    conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                    local.conn = conn
                return conn

            def _forward(self) -> None:
                started = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                path, _, query = self.path.partition("?")
                try:
                    conn = self._upstream()
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        answer = conn.getresponse()
                    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                        # A kept-alive upstream connection went stale: reconnect once.
                        conn.close()
                        conn.request(self.command, self.path, body=body, headers=headers)
                        answer = conn.getresponse()
                    payload = answer.read()
                    status = answer.status
                    reply_headers = [(k, v) for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP]
                except OSError:
                    local.conn = None
                    status, payload, reply_headers = 502, b'{"detail": "counting proxy: upstream failed"}', []
                proxy._record(Logged(started, time.monotonic() - started, self.command, path, query, status))
                self.send_response(status)
                for key, value in reply_headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

        return Handler
