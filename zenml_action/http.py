"""The one place that does HTTP.

Everything else builds `Request` values and reads `Response` values
(`api.py`); `send()` is the only function that touches the network, and the
only place where network exceptions become `ActionError`s.

Standard library only. Importing requests + urllib3 takes about 0.2 s, more
than all the overhead the benchmark allows the action over the fastest
possible client (bench/README.md, "Why not requests"). What the action needs
of an HTTP library is here instead: kept-alive connections shared by threads,
retries of what is safe to repeat, proxies from the environment, TLS with a
private CA, and never following a redirect.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import random
import select
import socket
import ssl  # http.client imports it anyway: lazy would save nothing
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from zenml_action.errors import ConnectionFailed

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
USER_AGENT = "zenml-pipeline-trigger-action"

# What is retried here, for every caller (callers retry more where they know
# it is safe, e.g. the trigger after looking its tag up):
CONNECT_RETRIES = 4  # any method: a connection that never opened sent nothing
READ_RETRIES = 2  # GET only: a broken or silent answer
STATUS_RETRIES = 4  # GET only: a busy or failing server or proxy
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    form: dict[str, str] | None = None
    # What the request is for, in words a user understands ("listing snapshots").
    purpose: str = ""
    authenticated: bool = True


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The decoded body, or None when it is not JSON (an HTML error page
        from a proxy, a truncated body)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# -- proxies, from the environment as curl and requests read it --------------


def proxy_for(url: str, environ: Mapping[str, str]) -> str:
    """The proxy to reach `url` through ("" to connect directly), from
    `https_proxy`/`http_proxy`/`all_proxy` and `no_proxy`; the lowercase
    name wins over the uppercase one."""

    def variable(name: str) -> str:
        return (environ.get(name) or environ.get(name.upper()) or "").strip()

    parts = urlsplit(url)
    if bypasses_proxy(parts.hostname or "", parts.port, variable("no_proxy")):
        return ""
    return variable(f"{parts.scheme}_proxy") or variable("all_proxy")


def bypasses_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """`no_proxy` entries: `*`, a host or domain (`example.com` and
    `.example.com` both cover subdomains), `host:port`, or an IP network."""
    host = host.lower()
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name) or _in_network(host, name):
            return True
    return False


def _in_network(host: str, entry: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


# -- connections ----------------------------------------------------------------


class _NotSent(Exception):
    """The connection failed before the request left: safe to repeat."""


class Transport:
    """Kept-alive connections to one server, shared by the threads that send
    (the login and `/info` go out side by side)."""

    def __init__(self, base_url: str, cafile: str | None = None, proxy: str = "") -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.proxy = urlsplit(proxy if "://" in proxy else f"http://{proxy}") if proxy else None
        if self.proxy is not None and self.proxy.scheme != "http":
            raise ConnectionFailed(
                f"The proxy `{self.proxy.scheme}://{self.proxy.hostname}` from the environment "
                "(HTTPS_PROXY/HTTP_PROXY/ALL_PROXY) is not an http:// proxy, the only kind the action "
                "supports. Point the variable at an HTTP proxy, or add the server's host to NO_PROXY."
            )
        self.context: ssl.SSLContext | None = None
        if self.https:
            # `ca-bundle` replaces the system's CAs (SSL_CERT_FILE/SSL_CERT_DIR
            # apply when it is not given).
            self.context = ssl.create_default_context(cafile=cafile)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def target(self, request: Request) -> str:
        path = self.base_path + request.path
        if request.params:
            path += "?" + urlencode(request.params)
        if self.proxy is not None and not self.https:
            # A plain-HTTP proxy takes the absolute URL (RFC 9112, 3.2.2).
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"http://{host}:{self.port}{path}"
        return path

    def proxy_headers(self) -> dict[str, str]:
        if self.proxy is None or self.proxy.username is None:
            return {}
        credentials = f"{unquote(self.proxy.username)}:{unquote(self.proxy.password or '')}"
        return {"Proxy-Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}

    def checkout(self, connect_timeout: float) -> http.client.HTTPConnection:
        """An idle kept-alive connection (the most recent one still open),
        else a new one. Shared across threads: the login's connection, opened
        in the background, carries the lookup and the trigger after it, so a
        TLS handshake is paid once, not once per thread."""
        with self._lock:
            while self._idle:
                idle = self._idle.pop()
                if idle.sock is not None and not _closed_by_peer(idle.sock):
                    return idle
                idle.close()
        host, port = (self.proxy.hostname or "", self.proxy.port or 80) if self.proxy else (self.host, self.port)
        connection: http.client.HTTPConnection
        if self.https:
            connection = http.client.HTTPSConnection(host, port, timeout=connect_timeout, context=self.context)
            if self.proxy is not None:
                connection.set_tunnel(self.host, self.port, headers=self.proxy_headers())
        else:
            connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            connection.connect()
        except OSError as exc:  # refused, unresolvable, timed out, TLS, tunnel refused
            connection.close()
            raise _NotSent() from exc
        return connection

    def checkin(self, connection: http.client.HTTPConnection) -> None:
        """Keep a connection whose last answer was read to the end."""
        with self._lock:
            self._idle.append(connection)


def _closed_by_peer(sock: socket.socket) -> bool:
    """A kept-alive socket the server has since closed reads as ready (EOF):
    sending on it would fail, or worse, half-succeed."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


# -- sending ----------------------------------------------------------------------


def encode(request: Request, token: str | None) -> tuple[bytes | None, dict[str, str]]:
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if token and request.authenticated:
        headers["Authorization"] = f"Bearer {token}"
    body: bytes | None = None
    if request.form is not None:
        body = urlencode(request.form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif request.json is not None:
        body = json.dumps(request.json).encode()
        headers["Content-Type"] = "application/json"
    if body is not None or request.method in ("POST", "PUT", "PATCH"):
        headers["Content-Length"] = str(len(body or b""))
    return body, headers


def _exchange(
    transport: Transport,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: tuple[float, float],
) -> Response:
    connection = transport.checkout(timeout[0])
    try:
        assert connection.sock is not None
        connection.sock.settimeout(timeout[1])
        connection.request(method, target, body=body, headers=headers)
        raw = connection.getresponse()
        payload = raw.read()
    except BaseException:
        connection.close()
        raise
    if raw.will_close:
        connection.close()
    else:
        transport.checkin(connection)
    return Response(status=raw.status, headers={k.lower(): v for k, v in raw.getheaders()}, body=payload)


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter, at most 10.5 s."""
    return float(min(10.0, 0.5 * 2 ** min(attempt, 8)) + random.uniform(0, 0.5))  # noqa: S311 - jitter, not crypto


def retry_after_seconds(header: str) -> float | None:
    """A Retry-After in seconds, within reason; None for none (or a date)."""
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(header)))
    except ValueError:
        return None


def retry_delay(attempt: int, retry_after: str = "") -> float:
    """The server's Retry-After when it gives one, else `backoff`; the
    first retry is immediate."""
    seconds = retry_after_seconds(retry_after)
    if seconds is not None:
        return seconds
    return 0.0 if attempt == 0 else backoff(attempt)


def send(
    transport: Transport,
    request: Request,
    token: str | None,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
) -> Response:
    """Send once, repeating only what cannot have acted twice: a connection
    that never opened (any method) and, for GET, a broken answer or a busy
    server. A POST that may have reached the server is retried by the
    caller, which knows whether that can create a second run."""
    body, headers = encode(request, token)
    if not transport.https:
        # Over HTTPS the proxy only sees the tunnel's CONNECT (set_tunnel).
        headers.update(transport.proxy_headers())
    target = transport.target(request)
    not_sent = broken = busy = 0
    while True:
        try:
            response = _exchange(transport, request.method, target, body, headers, timeout)
        except _NotSent as exc:
            if not_sent >= CONNECT_RETRIES or isinstance(exc.__cause__, ssl.SSLError):
                raise _connect_failure(transport, request, exc.__cause__, timeout) from exc.__cause__
            time.sleep(retry_delay(not_sent))
            not_sent += 1
            continue
        except (OSError, http.client.HTTPException) as exc:
            if request.method != "GET" or broken >= READ_RETRIES:
                raise _broken(transport, request, exc, timeout) from exc
            time.sleep(retry_delay(broken))
            broken += 1
            continue
        if request.method == "GET" and response.status in RETRY_STATUSES and busy < STATUS_RETRIES:
            time.sleep(retry_delay(busy + 1, response.headers.get("retry-after", "")))
            busy += 1
            continue
        return response


def _connect_failure(
    transport: Transport, request: Request, exc: BaseException | None, timeout: tuple[float, float]
) -> ConnectionFailed:
    base_url, purpose = transport.base_url, request.purpose
    if isinstance(exc, ssl.SSLError):
        return ConnectionFailed(
            f"TLS verification failed for {base_url} while {purpose} ({exc}). "
            "If the server uses a private CA, pass its PEM bundle in `ca-bundle`."
        )
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(
            f"Timed out after {timeout[0]:g}s connecting to {base_url} while {purpose}. "
            "Check `workspace-url` and that the server is reachable from the runner."
        )
    if transport.proxy is not None:
        return ConnectionFailed(
            f"Could not reach {base_url} through the proxy {transport.proxy.hostname}:{transport.proxy.port or 80} "
            f"(from HTTPS_PROXY/HTTP_PROXY) while {purpose}: {exc}. Check the proxy, or add the "
            "server's host to NO_PROXY if it should be reached directly."
        )
    why = "the host name does not resolve" if isinstance(exc, socket.gaierror) else str(exc)
    return ConnectionFailed(
        f"Could not connect to {base_url} while {purpose} ({why}). Check `workspace-url` "
        "(scheme, host, port) and that the server is running and reachable from the runner."
    )


def _broken(
    transport: Transport, request: Request, exc: BaseException, timeout: tuple[float, float]
) -> ConnectionFailed:
    # The request may have been delivered: a POST may have acted.
    if isinstance(exc, TimeoutError):
        return ConnectionFailed(
            f"{transport.base_url} did not answer in {timeout[1]:g}s while {request.purpose}. "
            "The server may be overloaded; try again later.",
            maybe_sent=True,
        )
    return ConnectionFailed(
        f"The connection to {transport.base_url} broke while {request.purpose} "
        f"({type(exc).__name__}). A proxy or the server dropped it; try again later.",
        maybe_sent=True,
    )
