"""The HTTP seam's pure parts: which proxy a request goes through, what it
sends, and how long it waits before repeating. (What goes over the wire is
tested against the real server: test_server_side, test_faults, test_proxy.)"""

from __future__ import annotations

import pytest

from zenml_action.http import Request, Transport, bypasses_proxy, encode, proxy_for, retry_delay

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
    from zenml_action.errors import ConnectionFailed

    with pytest.raises(ConnectionFailed, match="not an http:// proxy"):
        Transport("https://zenml.example.com", proxy="socks5://proxy:1080")
