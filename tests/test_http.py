"""The HTTP seam: which proxy a request goes through, what it sends, how
long it waits before repeating; and two behaviours a real server shows only
by chance, on a raw socket server: a kept-alive connection the server has
closed, and nothing listening. (The rest goes over the wire to the real
server: test_server_side, test_faults, test_proxy.)"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from zenml_action.errors import ConnectionFailed
from zenml_action.http import Request, Transport, bypasses_proxy, encode, proxy_for, retry_delay, send

PROXY = "http://proxy.corp:3128"


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("https://zenml.example.com", {}, ""),
        ("https://zenml.example.com", {"HTTPS_PROXY": PROXY}, PROXY),
        ("https://zenml.example.com", {"https_proxy": PROXY}, PROXY),
        # The lowercase variable wins, as with curl and requests.
        ("https://zenml.example.com", {"https_proxy": PROXY, "HTTPS_PROXY": "http://other:1"}, PROXY),
        # An https server ignores http_proxy, and the other way round.
        ("https://zenml.example.com", {"http_proxy": PROXY}, ""),
        ("http://zenml.internal:8080", {"https_proxy": PROXY}, ""),
        ("http://zenml.internal:8080", {"HTTP_PROXY": PROXY}, PROXY),
        ("https://zenml.example.com", {"ALL_PROXY": PROXY}, PROXY),
        ("https://zenml.example.com", {"all_proxy": "http://fallback:1", "https_proxy": PROXY}, PROXY),
        ("https://zenml.example.com", {"https_proxy": PROXY, "no_proxy": "example.com"}, ""),
        ("https://zenml.example.com", {"https_proxy": PROXY, "NO_PROXY": "*"}, ""),
    ],
)
def test_proxy_for(url: str, environ: dict[str, str], expected: str) -> None:
    assert proxy_for(url, environ) == expected


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "bypassed"),
    [
        ("zenml.example.com", 443, "", False),
        ("zenml.example.com", 443, "*", True),
        ("zenml.example.com", 443, "zenml.example.com", True),
        ("zenml.example.com", 443, "example.com", True),
        ("zenml.example.com", 443, ".example.com", True),
        ("zenml.example.com", 443, "ZENML.Example.COM", True),
        ("notexample.com", 443, "example.com", False),
        ("zenml.example.com", 443, "other.org, example.com", True),
        ("zenml.example.com", 443, "zenml.example.com:443", True),
        ("zenml.example.com", 8443, "zenml.example.com:443", False),
        ("10.1.2.3", 80, "10.0.0.0/8", True),
        ("192.168.1.1", 80, "10.0.0.0/8", False),
        ("127.0.0.1", 8237, "localhost,127.0.0.1", True),
        ("127.0.0.1", 8237, " , ", False),
    ],
)
def test_no_proxy(host: str, port: int, no_proxy: str, bypassed: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is bypassed


@pytest.mark.parametrize(
    ("base_url", "proxy", "expected"),
    [
        ("http://zenml:8080", "", "/api/v1/info?size=1"),
        ("http://zenml:8080/prefix/", "", "/prefix/api/v1/info?size=1"),
        # Through a plain-HTTP proxy the request names the whole URL...
        ("http://zenml:8080", PROXY, "http://zenml:8080/api/v1/info?size=1"),
        ("http://[fd00::1]:8080", PROXY, "http://[fd00::1]:8080/api/v1/info?size=1"),
        # ...through a CONNECT tunnel (https) only the path.
        ("https://zenml.example.com", PROXY, "/api/v1/info?size=1"),
    ],
)
def test_request_target(base_url: str, proxy: str, expected: str) -> None:
    request = Request("GET", "/api/v1/info", params={"size": "1"})
    assert Transport(base_url, proxy=proxy).target(request) == expected


def test_proxy_credentials_go_in_proxy_authorization_only() -> None:
    transport = Transport("http://zenml:8080", proxy="http://user%40corp:p%3Ass@proxy:3128")
    # base64("user@corp:p:ss")
    assert transport.proxy_headers() == {"Proxy-Authorization": "Basic dXNlckBjb3JwOnA6c3M="}
    assert Transport("http://zenml:8080", proxy=PROXY).proxy_headers() == {}


@pytest.mark.parametrize(
    ("request_", "token", "body", "headers"),
    [
        (Request("GET", "/x"), "t", None, {"Authorization": "Bearer t"}),
        (Request("GET", "/x", authenticated=False), "t", None, {}),
        (Request("POST", "/login", form={"password": "a b&c"}), None, b"password=a+b%26c",
         {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": "16"}),
        (Request("POST", "/runs", json={"a": 1}), "t", b'{"a": 1}',
         {"Content-Type": "application/json", "Content-Length": "8", "Authorization": "Bearer t"}),
        (Request("POST", "/stop"), "t", None, {"Content-Length": "0", "Authorization": "Bearer t"}),
    ],
    ids=["get", "public-get", "form", "json", "empty-post"],
)
def test_encode(request_: Request, token: str | None, body: bytes | None, headers: dict[str, str]) -> None:
    sent_body, sent_headers = encode(request_, token)
    assert sent_body == body
    assert sent_headers == {"Accept": "application/json", "User-Agent": "zenml-pipeline-trigger-action", **headers}


@pytest.mark.parametrize(
    ("attempt", "retry_after", "low", "high"),
    [
        (0, "", 0.0, 0.0),  # the first repeat is immediate
        (1, "", 1.0, 1.5),
        (3, "", 4.0, 4.5),
        (9, "", 10.0, 10.5),  # capped
        (1, "2", 2.0, 2.0),  # the server's Retry-After wins
        (1, "3600", 30.0, 30.0),  # within reason
        (1, "Wed, 21 Oct 2015 07:28:00 GMT", 1.0, 1.5),  # a date: back off as usual
    ],
)
def test_retry_delay(attempt: int, retry_after: str, low: float, high: float) -> None:
    assert low <= retry_delay(attempt, retry_after) <= high


def test_only_http_proxies_are_supported() -> None:
    with pytest.raises(ConnectionFailed, match="not an http:// proxy"):
        Transport("https://zenml.example.com", proxy="socks5://proxy:1080")


class _RawServer:
    """Answers each request with a keep-alive response. With `close_after`
    it closes the connection anyway, as servers do with idle keep-alive
    connections (uvicorn after 5 s). Counts the connections it accepted."""

    def __init__(self, close_after: bool) -> None:
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            while self._answer_one(conn) and not self.close_after:
                pass

    def _answer_one(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(dict(
            line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
        ).get(b"Content-Length", b"0"))
        while len(body) < length:
            body += conn.recv(65536)
        self.requests.append(head.split(b"\r\n")[0])
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        return True

    def close(self) -> None:
        self._sock.close()


def test_a_connection_the_server_closed_is_not_reused() -> None:
    """The second and third requests find the kept-alive connection closed
    by the server and open a new one, instead of failing (or, for a POST,
    leaving it unknown whether the server got it)."""
    server = _RawServer(close_after=True)
    transport = Transport(server.url)
    try:
        first = send(transport, Request("GET", "/api/v1/info"), None)
        time.sleep(0.2)  # the server has closed its end by now
        second = send(transport, Request("GET", "/api/v1/info"), None)
        time.sleep(0.2)
        third = send(transport, Request("POST", "/api/v1/runs", json={"a": 1}), "token")
    finally:
        server.close()

    assert [first.status, second.status, third.status] == [200, 200, 200]
    assert server.requests == [b"GET /api/v1/info HTTP/1.1", b"GET /api/v1/info HTTP/1.1", b"POST /api/v1/runs HTTP/1.1"]
    assert server.connections == 3


def test_a_connection_opened_in_one_thread_carries_the_next_request() -> None:
    """The login runs in a background thread; the lookup and the trigger
    after it reuse its connection (over TLS, one handshake instead of two)."""
    server = _RawServer(close_after=False)
    transport = Transport(server.url)
    try:
        login = threading.Thread(target=send, args=(transport, Request("POST", "/api/v1/login", form={"p": "k"}), None))
        login.start()
        login.join()
        send(transport, Request("GET", "/api/v1/pipeline_snapshots"), "token")
        send(transport, Request("POST", "/api/v1/runs", json={}), "token")
    finally:
        server.close()

    assert len(server.requests) == 3
    assert server.connections == 1


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
