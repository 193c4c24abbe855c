"""A fault-injecting HTTP proxy to put between the action and a real server.

`FaultProxy` listens on loopback and forwards every request to the upstream
server (also on loopback) with `http.client`, unless a programmed `Rule`
matches the request: then it produces the rule's fault instead, the way a
flaky network, an overloaded load balancer or a dying server would.

    with FaultProxy(server.url) as proxy:
        proxy.add(Rule("POST", r"/pipeline_snapshots/[^/]+/runs$", RESET_AFTER))
        ... run the action against proxy.url ...
        proxy.count("POST", r"/runs$")

Faults:

- `RESET_BEFORE`: the connection is reset (TCP RST) before anything is
  forwarded: the server never sees the request.
- `RESET_AFTER`: the request is forwarded and the server answers, then the
  client's connection is reset: the server did the work, the client never
  learns it.
- `STATUS`: answer `status` (502, 503, 504, 429, ...) with `headers` and
  `body`, without forwarding; with `forward=True`, forward first (the server
  did the work) and then answer the fault status instead of the server's.
- `DELAY`: forward at once, then hold the server's answer for `delay`
  seconds (a slow server: past the client's read timeout, the client gives
  up although the server did the work). With `forward=False`, wait first and
  forward afterwards (a slow network before the server).
- `TRUNCATE`: forward, then send the server's status and headers with the
  full `Content-Length` but only the first half of the body, and close.
- `TRUNCATE_JSON`: forward, then send a complete HTTP answer (status 200 and
  a matching `Content-Length`) whose JSON body is cut in half.
- `HTML`: answer `status` (default 502) with a load balancer's HTML error page
  instead of JSON; with `forward=True`, after forwarding.

A rule applies to the `times` next matching requests (None: all of them),
after letting `skip` matching requests through. Every request is recorded
with what the proxy did (`Record`), so tests can count triggers.

When the upstream cannot be reached (a restarting server), the proxy answers
502 with an HTML page, as a load balancer does.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from support.loopback import LoopbackHTTPServer, LoopbackServer, QuietHandler

RESET_BEFORE = "reset-before"
RESET_AFTER = "reset-after"
STATUS = "status"
DELAY = "delay"
TRUNCATE = "truncate"
TRUNCATE_JSON = "truncate-json"
HTML = "html"

FAULTS = frozenset({RESET_BEFORE, RESET_AFTER, STATUS, DELAY, TRUNCATE, TRUNCATE_JSON, HTML})

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        # `send_response` writes its own.
        "server",
        "date",
    }
)

LOAD_BALANCER_PAGE = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class Rule:
    method: str
    path: str  # regular expression, searched in the path (without the query)
    fault: str
    query: str = ""  # regular expression, searched in the query ("": any)
    times: int | None = 1
    skip: int = 0
    status: int = 502
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    forward: bool = False
    # A regular expression searched in the query too ("" matches any): the
    # failed steps' listing (`status=failed`) and not the wait's.
    query: str = ""
    # How many requests matched, and how many got the fault.
    matched: int = 0
    applied: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}")
        self._pattern = re.compile(self.path)

    def claim(self, method: str, path: str, query: str = "") -> bool:
        """Does this rule apply to this request? Counts it if so."""
        if self.method not in ("*", method) or not self._pattern.search(path):
            return False
        if self.query and not re.search(self.query, query):
            return False
        self.matched += 1
        if self.matched <= self.skip:
            return False
        if self.times is not None and self.applied >= self.times:
            return False
        self.applied += 1
        return True


@dataclass(frozen=True)
class Record:
    method: str
    path: str
    query: str
    # What the proxy did: the fault name, or "forwarded".
    action: str
    # The status the client got (None: no answer, e.g. a reset).
    status: int | None
    # Whether the upstream server received the request.
    reached_server: bool
    # The status the upstream server answered (None if not reached).
    upstream_status: int | None
    # When the request arrived (time.monotonic()).
    at: float
    # The request's body, as sent by the client.
    body: bytes = b""


class _Handler(QuietHandler):
    server: LoopbackServer[FaultProxy]

    def _any(self) -> None:
        arrived = time.monotonic()
        proxy = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, query = parts.path, parts.query
        rule = proxy.claim(self.command, path, query)
        fault = rule.fault if rule else "forwarded"

        def record(status: int | None, reached: bool, upstream: int | None) -> None:
            proxy.record(Record(self.command, path, query, fault, status, reached, upstream, arrived, body))

        if rule and rule.fault == RESET_BEFORE:
            record(None, False, None)
            self._reset()
            return
        if rule and rule.fault in (STATUS, HTML) and not rule.forward:
            record(rule.status, False, None)
            self._answer_fault(rule)
            return
        if rule and rule.fault == DELAY and not rule.forward:
            time.sleep(rule.delay)

        upstream = proxy.forward(self.command, self.path, self.headers.items(), body)
        if upstream is None:
            # The server is down (restarting): a load balancer says 502.
            record(502, False, None)
            self._send(502, {"Content-Type": "text/html"}, LOAD_BALANCER_PAGE.format(status=502).encode())
            return
        status, headers, payload = upstream
        if rule and rule.fault == DELAY and rule.forward:
            record(status, True, status)
            time.sleep(rule.delay)
            self._send(status, dict(headers), payload)
            return
        if rule and rule.fault == RESET_AFTER:
            record(None, True, status)
            self._reset()
            return
        if rule and rule.fault in (STATUS, HTML):
            record(rule.status, True, status)
            self._answer_fault(rule)
            return
        if rule and rule.fault == TRUNCATE:
            record(status, True, status)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if rule and rule.fault == TRUNCATE_JSON:
            record(200, True, status)
            self._send(200, {"Content-Type": "application/json"}, payload[: max(1, len(payload) // 2)])
            return
        record(status, True, status)
        self._send(status, dict(headers), payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

    def _answer_fault(self, rule: Rule) -> None:
        if rule.fault == HTML:
            body = rule.body or LOAD_BALANCER_PAGE.format(status=rule.status).encode()
            headers = {"Content-Type": "text/html", **rule.headers}
        else:
            body = rule.body
            headers = dict(rule.headers)
            if body and "Content-Type" not in headers:
                headers["Content-Type"] = "application/json"
        self._send(rule.status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        """Close with a TCP RST instead of a FIN: the client sees
        `Connection reset by peer`."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True


class FaultProxy(LoopbackHTTPServer):
    """A programmable faulty proxy in front of `upstream` (an http URL)."""

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.rules: list[Rule] = []
        self.records: list[Record] = []
        self._lock = threading.Lock()
        super().__init__(_Handler, "fault-proxy", host=host)

    # -- programming and reading back --------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.records.clear()

    def claim(self, method: str, path: str, query: str = "") -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.claim(method, path, query):
                    return rule
        return None

    def record(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def requests(self, method: str = "*", path: str = "") -> list[Record]:
        pattern = re.compile(path)
        with self._lock:
            return [r for r in self.records if method in ("*", r.method) and pattern.search(r.path)]

    def count(self, method: str = "*", path: str = "") -> int:
        return len(self.requests(method, path))

    @property
    def faults_injected(self) -> int:
        with self._lock:
            return sum(rule.applied for rule in self.rules)

    # -- forwarding ---------------------------------------------------------

    def forward(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Send the request upstream; None when the upstream is unreachable."""
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=300)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.putheader("Connection", "close")
            connection.endheaders(body)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            return response.status, kept, payload
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()


# -- a server that only records ---------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, dict[str, str], bytes]


class _RecorderHandler(QuietHandler):
    server: LoopbackServer[Recorder]

    def _any(self) -> None:
        recorder = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with recorder.lock:
            recorder.received.append(received)
        if self.command == "CONNECT":
            # A client tunnelling through us as a proxy: refuse the tunnel.
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True
            return
        status, headers, payload = recorder.answer(received)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_CONNECT = _any


class Recorder(LoopbackHTTPServer):
    """A loopback HTTP(S) server that records every request it receives
    (headers and body) and answers with `answer(received)`: by default 502.

    Used as a sink that must receive nothing (e.g. as `HTTPS_PROXY`, so that
    any attempt to reach a non-loopback host lands here instead of on the
    network), as a redirect target, or as a tiny fake ZenML server.
    """

    def __init__(
        self,
        answer: Callable[[Received], Answer] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.answer = answer or (lambda _: (502, {"Content-Type": "text/plain"}, b"recorder"))
        super().__init__(_RecorderHandler, "recorder", ssl_context)
