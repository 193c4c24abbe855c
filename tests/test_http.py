"""The HTTP seam: which proxy a request goes through, what it sends and
what it repeats; and behaviours a real server shows only by chance, on raw
socket servers: a kept-alive connection the server has closed, nothing
listening, a TLS handshake cut short, a proxy asking for credentials, a
connection that breaks after the request went out, an answer that trickles,
stays silent or never ends. (The rest goes over the wire to the real
server: test_server_side, test_faults, test_proxy.)

How long a request may take is not the seam's business: the action's one
deadline (`deadline.bounded`) raises `TimedOut` wherever the request is
blocked. The tests here that wait on a slow server run under it."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from support.tls import make_certificates

from zenml_action import deadline
from zenml_action.errors import ConnectionFailed, ProxyFailed, ServerError
from zenml_action.http import MAX_BODY_BYTES, Request, RetryKind, RetryPolicy, Transport, encode, send
from zenml_action.proxies import normalise_no_proxy, proxy_for

PROXY = "http://proxy.corp:3128"
GET = Request("GET", "/api/v1/runs/x")
LOGIN = Request("POST", "/api/v1/login", form={"p": "k"}, retry="login")
TRIGGER = Request("POST", "/api/v1/pipeline_snapshots/x/runs", json={})


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("https://zenml.example.com", {}, ""),
        ("https://zenml.example.com", {"HTTPS_PROXY": PROXY}, PROXY),
        ("https://zenml.example.com", {"https_proxy": PROXY}, PROXY),
        # The lowercase variable wins, as with curl and requests.
        ("https://zenml.example.com", {"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, PROXY),
        ("https://zenml.example.com", {"HTTPS_PROXY": "http://other:1", "https_proxy": PROXY}, PROXY),
        # An https server ignores http_proxy, and the other way round.
        ("https://zenml.example.com", {"http_proxy": PROXY}, ""),
        ("http://zenml.internal:8080", {"https_proxy": PROXY}, ""),
        ("http://zenml.internal:8080", {"HTTP_PROXY": PROXY}, PROXY),
        ("https://zenml.example.com", {"ALL_PROXY": PROXY}, PROXY),
        ("https://zenml.example.com", {"all_proxy": "http://fallback:1", "https_proxy": PROXY}, PROXY),
        ("https://zenml.example.com", {"https_proxy": PROXY, "no_proxy": "example.com"}, ""),
        ("https://zenml.example.com", {"https_proxy": PROXY, "no_proxy": ".example.com"}, ""),
        ("https://zenml.example.com", {"https_proxy": PROXY, "NO_PROXY": "*"}, ""),
        ("https://notexample.com", {"https_proxy": PROXY, "no_proxy": "example.com"}, PROXY),
        # The port is implicit in the URL and explicit in NO_PROXY.
        ("https://zenml.example.com", {"https_proxy": PROXY, "no_proxy": "zenml.example.com:443"}, ""),
        ("https://zenml.example.com:8443", {"https_proxy": PROXY, "no_proxy": "zenml.example.com:443"}, PROXY),
        ("http://zenml.internal", {"http_proxy": PROXY, "no_proxy": "zenml.internal:80"}, ""),
        # IPv6 literals, with or without brackets and port, and networks.
        ("http://[::1]:8237", {"http_proxy": PROXY, "no_proxy": "[::1]"}, ""),
        ("http://[::1]:8237", {"http_proxy": PROXY, "no_proxy": "::1"}, ""),
        ("http://[::1]:8237", {"http_proxy": PROXY, "no_proxy": "[::1]:8237"}, ""),
        ("http://[fd00::5]:80", {"http_proxy": PROXY, "no_proxy": "fd00::/8"}, ""),
        ("http://10.1.2.3", {"http_proxy": PROXY, "no_proxy": "10.0.0.0/8"}, ""),
        ("http://192.168.1.1", {"http_proxy": PROXY, "no_proxy": "10.0.0.0/8"}, PROXY),
        ("http://127.0.0.1:8237", {"http_proxy": PROXY, "no_proxy": "localhost,127.0.0.1"}, ""),
        ("http://127.0.0.1:8237", {"http_proxy": PROXY, "no_proxy": " , "}, PROXY),
    ],
)
def test_proxy_for(url: str, environ: dict[str, str], expected: str) -> None:
    assert proxy_for(url, environ) == expected


@pytest.mark.parametrize(
    ("no_proxy", "url", "expected"),
    [
        ("zenml.example.com:443", "https://zenml.example.com", "zenml.example.com"),
        ("zenml.example.com:443", "https://zenml.example.com:8443", "zenml.example.com:443"),
        ("[::1]", "http://[::1]:8237", "::1"),
        ("[::1]:8237", "http://[::1]:8237", "::1"),
        ("fd00::/8", "http://[fd00::5]", "fd00::5"),
        (" A.com , ,b.org ", "https://x", "a.com,b.org"),
    ],
)
def test_no_proxy_is_normalised_for_requests(no_proxy: str, url: str, expected: str) -> None:
    assert normalise_no_proxy(no_proxy, url) == expected


@pytest.mark.parametrize(
    ("request_", "token", "body", "headers"),
    [
        (Request("GET", "/x"), "t", None, {"Authorization": "Bearer t"}),
        (Request("GET", "/x", authenticated=False), "t", None, {}),
        (Request("POST", "/login", form={"password": "a b&c"}), None, "password=a+b%26c",
         {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "16"}),
        (Request("POST", "/runs", json={"a": 1}), "t", b'{"a": 1}',
         {"Content-Type": "application/json", "Content-Length": "8", "Authorization": "Bearer t"}),
        (Request("POST", "/stop"), "t", None, {"Content-Length": "0", "Authorization": "Bearer t"}),
    ],
    ids=["get", "public-get", "form", "json", "empty-post"],
)
def test_encode(request_: Request, token: str | None, body: bytes | None, headers: dict[str, str]) -> None:
    prepared = encode(request_, token, "http://zenml:8080/prefix")
    assert prepared.url == "http://zenml:8080/prefix" + request_.path
    assert prepared.body == body
    assert {k: v for k, v in prepared.headers.items() if k in {"Authorization", "Content-Type", "Content-Length"}} == headers


BUSY = {429, 502, 503, 504}


@pytest.mark.parametrize(
    ("request_", "kind", "connect", "read", "status", "statuses"),
    [
        # A GET is repeated for anything that may pass.
        (Request("GET", "/runs"), "read", 4, 2, 4, BUSY),
        # The login creates nothing: busy and broken answers are asked again.
        (Request("POST", "/login", retry="login"), "login", 4, 2, 4, BUSY),
        # The trigger, and any other request that may act: only a
        # connection that never opened.
        (Request("POST", "/runs"), "once", 4, 0, 0, set()),
        (Request("DELETE", "/tags/x"), "once", 4, 0, 0, set()),
    ],
    ids=["get", "login", "trigger", "delete"],
)
def test_each_request_gets_the_retries_that_are_safe_for_it(
    request_: Request, kind: RetryKind, connect: int, read: int, status: int, statuses: set[int]
) -> None:
    assert request_.retry_kind == kind
    retry = RetryPolicy().retry_for(kind)
    assert (retry.connect, retry.read, retry.status, set(retry.status_forcelist or ())) == (connect, read, status, statuses)
    # A proxy's 407 or a certificate that does not verify is never repeated,
    # and a redirect never followed.
    assert (retry.other, retry.redirect) == (0, 0)


def test_a_refused_connection_is_retried_then_explained() -> None:
    """Nothing listens: `send` tries a few times (nothing can have reached a
    server), then says what to check; the request was certainly not sent."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))  # a port nobody listens on
        url = f"http://127.0.0.1:{holder.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as failure:
            send(Transport(url), Request("POST", "/api/v1/login", purpose="logging in"), None)
    assert "Could not connect" in str(failure.value) and "`workspace-url`" in str(failure.value)
    assert failure.value.maybe_sent is False
    assert 1.0 < time.monotonic() - started < 20.0  # retried with backoff, not forever


class _Listener:
    """Accepts connections on loopback and hands each, with its number
    (from 1), to `handle` in a thread of its own."""

    def __init__(self, handle: Callable[[socket.socket, int], None]) -> None:
        self.handle = handle
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn, self.connections), daemon=True).start()

    def _handle(self, conn: socket.socket, number: int) -> None:
        with conn:
            try:
                self.handle(conn, number)
            except OSError:
                pass

    def close(self) -> None:
        self._sock.close()


@contextmanager
def listening(handle: Callable[[socket.socket, int], None]) -> Iterator[_Listener]:
    listener = _Listener(handle)
    try:
        yield listener
    finally:
        listener.close()


def _read_head(conn: socket.socket) -> bytes:
    """One request's head, its body read too: a socket closed with unread
    data sends a reset, which could overtake the answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset, as a crashing proxy or load balancer does."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize(
    ("request_", "repeated"),
    [
        (GET, True),
        # urllib3 cannot tell a reset handshake from a request that broke
        # after going out: the trigger is not repeated, its caller looks the
        # run up by its key.
        (TRIGGER, False),
    ],
    ids=["get", "trigger"],
)
def test_a_tls_handshake_reset(certificates: tuple[Path, Path, Path], request_: Request, repeated: bool) -> None:
    """The first connection is reset in the middle of the TLS handshake."""
    ca, cert, key = certificates
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    received: list[bytes] = []

    def handle(conn: socket.socket, number: int) -> None:
        if number == 1:
            conn.recv(1024)  # the ClientHello
            _reset(conn)
            return
        with context.wrap_socket(conn, server_side=True) as tls:
            received.append(_read_head(tls).split(b"\r\n")[0])
            tls.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id": "r"}')

    with listening(handle) as server:
        transport = Transport(f"https://127.0.0.1:{server.port}", cafile=str(ca))
        if repeated:
            assert send(transport, request_, "t").json() == {"id": "r"}
        else:
            with pytest.raises(ConnectionFailed) as failure:
                send(transport, request_, "t")
            assert failure.value.maybe_sent is True
    assert received == ([f"{request_.method} {request_.path} HTTP/1.1".encode()] if repeated else [])
    assert server.connections == (2 if repeated else 1)


def _plain_http(conn: socket.socket, number: int) -> None:
    conn.recv(65536)  # whatever came: a request, or a TLS ClientHello
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("url", "says", "maybe_sent"),
    [
        # Only the handshake went out; but a TLS error in the middle of an
        # answer looks the same, so the request may have been sent.
        ("https://127.0.0.1:{port}", "uses https only for a server that speaks TLS", True),
        ("http://127.0.0.1:99999", "cannot be used", False),
        ("zenml.internal", "cannot be used", False),
    ],
    ids=["https-to-plain-http", "port-out-of-range", "no-scheme"],
)
def test_a_wrong_address_is_explained(url: str, says: str, maybe_sent: bool) -> None:
    with listening(_plain_http) as server, pytest.raises(ConnectionFailed, match=says) as failure:
        send(Transport(url.format(port=server.port)), Request("GET", "/api/v1/info"), None)
    assert failure.value.maybe_sent is maybe_sent
    assert server.connections <= 1  # not repeated


def test_a_certificate_that_does_not_verify_names_ca_bundle_and_is_not_retried(certificates: tuple[Path, Path, Path]) -> None:
    _, cert, key = certificates
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def handle(conn: socket.socket, number: int) -> None:
        try:
            context.wrap_socket(conn, server_side=True).close()
        except ssl.SSLError:
            pass

    with listening(handle) as server, pytest.raises(ConnectionFailed) as failure:
        send(Transport(f"https://127.0.0.1:{server.port}"), Request("GET", "/api/v1/info", purpose="reading"), None)
    assert "did not verify" in str(failure.value) and "`ca-bundle`" in str(failure.value)
    assert server.connections == 1


@pytest.mark.parametrize("credentials", ["", "user:wrong@"])
def test_a_proxy_asking_for_credentials_is_explained_not_retried(credentials: str) -> None:
    """HTTPS through a proxy that answers the CONNECT with 407."""

    def handle(conn: socket.socket, number: int) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n")

    with listening(handle) as proxy, pytest.raises(ProxyFailed) as failure:
        transport = Transport("https://zenml.example.com", proxy=f"http://{credentials}127.0.0.1:{proxy.port}")
        send(transport, Request("GET", "/api/v1/info", purpose="reading the server's information"), None)
    message = str(failure.value)
    assert "407" in message and "credentials" in message and f"127.0.0.1:{proxy.port}" in message
    assert "wrong" not in message  # the proxy's password is never shown
    assert proxy.connections == 1


def _trickled_body(conn: socket.socket, number: int) -> None:
    _read_head(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(60):
        conn.sendall(b" ")
        time.sleep(1)


def _trickled_headers(conn: socket.socket, number: int) -> None:
    _read_head(conn)
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 60:
        conn.sendall(bytes([byte]))
        time.sleep(1)


def _silent(conn: socket.socket, number: int) -> None:
    _read_head(conn)
    time.sleep(30)


def _busy_for_long(conn: socket.socket, number: int) -> None:
    while _read_head(conn):
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 30\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize(
    ("handle", "request_"),
    [
        # Every read is within its timeout: only the deadline ends these.
        (_trickled_body, LOGIN),
        (_trickled_headers, LOGIN),
        # Within the read timeout (60 s), past the deadline.
        (_silent, GET),
        # The back-off the server asks for is slept until the deadline.
        (_busy_for_long, GET),
    ],
    ids=["trickled-body", "trickled-headers", "silent", "retry-after-past-the-deadline"],
)
def test_a_slow_server_is_cut_off_at_the_deadline(handle: Callable[[socket.socket, int], None], request_: Request) -> None:
    """However the server is slow, the request ends at the action's
    deadline: `TimedOut` is raised wherever the request is blocked."""
    with listening(handle) as server:
        started = time.monotonic()
        with pytest.raises(deadline.TimedOut), deadline.bounded(2):
            send(Transport(f"http://127.0.0.1:{server.port}"), request_, None)
    assert time.monotonic() - started < 3


def test_an_endless_answer_is_capped() -> None:
    chunk = b" " * 1024 * 1024

    def handle(conn: socket.socket, number: int) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        for _ in range(MAX_BODY_BYTES // len(chunk) + 8):
            conn.sendall(chunk)

    with listening(handle) as server, pytest.raises(ServerError, match="larger than"):
        send(Transport(f"http://127.0.0.1:{server.port}"), Request("GET", "/api/v1/info"), None)


def test_an_answer_nested_too_deep_is_not_json() -> None:
    depth = 200_000
    body = b"[" * depth + b"]" * depth

    def handle(conn: socket.socket, number: int) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with listening(handle) as server:
        response = send(Transport(f"http://127.0.0.1:{server.port}"), Request("GET", "/api/v1/info"), None)
    assert response.status == 200 and response.json() is None


def test_busy_answers_are_repeated_for_a_get_with_retry_after() -> None:
    def handle(conn: socket.socket, number: int) -> None:
        while _read_head(conn):
            if number == 1 and not getattr(handle, "answered", False):
                handle.answered = True  # type: ignore[attr-defined]
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
            else:
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"x"')

    with listening(handle) as server:
        started = time.monotonic()
        response = send(Transport(f"http://127.0.0.1:{server.port}"), Request("GET", "/api/v1/runs/x/status"), None)
    assert response.json() == "x"
    assert 1.0 <= time.monotonic() - started < 3


def test_a_busy_answer_to_a_trigger_is_returned_not_repeated() -> None:
    """The trigger's caller decides (it looks its key up first)."""
    seen: list[int] = []

    def handle(conn: socket.socket, number: int) -> None:
        while _read_head(conn):
            seen.append(number)
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")

    with listening(handle) as server:
        response = send(Transport(f"http://127.0.0.1:{server.port}"), Request("POST", "/api/v1/pipeline_snapshots/x/runs", json={}), "t")
    assert response.status == 503 and len(seen) == 1


def _breaking(where: str, received: list[bytes]) -> Callable[[socket.socket, int], None]:
    """The first connection closes after the request arrived, `where`
    ("before the answer" or "in the body"); the next ones answer."""

    def handle(conn: socket.socket, number: int) -> None:
        received.append(_read_head(conn).split(b"\r\n")[0])
        if number > 1:
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id": "r"}')
        elif where == "in the body":
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"id"')

    return handle


@pytest.mark.parametrize(
    ("request_", "where", "repeated"),
    [
        (GET, "before the answer", True),
        (GET, "in the body", True),
        (LOGIN, "before the answer", True),
        (LOGIN, "in the body", True),
        # The server may have created the run: the caller looks it up by its
        # key before sending again.
        (TRIGGER, "before the answer", False),
        (TRIGGER, "in the body", False),
    ],
    ids=[f"{who}-{where}" for who in ("get", "login", "trigger") for where in ("before-the-answer", "in-the-body")],
)
def test_a_connection_that_breaks_after_the_request_went_out(request_: Request, where: str, repeated: bool) -> None:
    received: list[bytes] = []
    with listening(_breaking(where, received)) as server:
        transport = Transport(f"http://127.0.0.1:{server.port}")
        if repeated:
            assert send(transport, request_, "t").json() == {"id": "r"}
        else:
            with pytest.raises(ConnectionFailed, match="broke") as failure:
                send(transport, request_, "t")
            assert failure.value.maybe_sent is True
    assert received == [f"{request_.method} {request_.path} HTTP/1.1".encode()] * (2 if repeated else 1)


def _keep_alive(close_after_each: bool, requests: list[bytes]) -> Callable[[socket.socket, int], None]:
    """Answers each request with a keep-alive response; with
    `close_after_each` it closes the connection anyway, as servers do with
    idle keep-alive connections (uvicorn after 5 s)."""

    def handle(conn: socket.socket, number: int) -> None:
        while head := _read_head(conn):
            requests.append(head.split(b"\r\n")[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
            if close_after_each:
                return

    return handle


def test_a_connection_the_server_closed_is_not_reused() -> None:
    """The second and third requests find the kept-alive connection closed
    by the server and open a new one, instead of failing (or, for a POST,
    leaving it unknown whether the server got it)."""
    requests: list[bytes] = []
    with listening(_keep_alive(True, requests)) as server:
        transport = Transport(f"http://127.0.0.1:{server.port}")
        first = send(transport, Request("GET", "/api/v1/info"), None)
        time.sleep(0.2)  # the server has closed its end by now
        second = send(transport, Request("GET", "/api/v1/info"), None)
        time.sleep(0.2)
        third = send(transport, Request("POST", "/api/v1/runs", json={"a": 1}), "token")

    assert [first.status, second.status, third.status] == [200, 200, 200]
    assert requests == [b"GET /api/v1/info HTTP/1.1", b"GET /api/v1/info HTTP/1.1", b"POST /api/v1/runs HTTP/1.1"]
    assert server.connections == 3


@pytest.mark.parametrize("through_a_proxy", [False, True], ids=["direct", "through-an-http-proxy"])
def test_a_connection_opened_in_one_thread_carries_the_next_request(through_a_proxy: bool) -> None:
    """The login runs in a background thread; the lookup and the trigger
    after it reuse its connection (over TLS, one handshake instead of
    three), though each goes out with the retries of its own kind. (The
    listener answers absolute-form requests as a forwarding proxy does.)"""
    requests: list[bytes] = []
    with listening(_keep_alive(False, requests)) as server:
        here = f"http://127.0.0.1:{server.port}"
        transport = Transport("http://zenml.internal", proxy=here) if through_a_proxy else Transport(here)
        login = threading.Thread(target=send, args=(transport, LOGIN, None))
        login.start()
        login.join()
        send(transport, Request("GET", "/api/v1/pipeline_snapshots"), "token")
        send(transport, Request("POST", "/api/v1/runs", json={}), "token")

    prefix = b"http://zenml.internal" if through_a_proxy else b""
    assert requests == [
        b"POST " + prefix + b"/api/v1/login HTTP/1.1",
        b"GET " + prefix + b"/api/v1/pipeline_snapshots HTTP/1.1",
        b"POST " + prefix + b"/api/v1/runs HTTP/1.1",
    ]
    assert server.connections == 1
