"""The one place that does HTTP: `requests` with urllib3's `Retry`.

Everything else builds `Request` values and reads `Response` values
(`api.py`); `send()` is the only function that touches the network, and the
only place where foreign exceptions become the action's errors.

What is adapted to the action, each for a reason given where it is done:
- one retry policy, of which each request gets what is safe for it
  (`RetryPolicy.retry_for`), and whose back-off never sleeps past the run's
  deadline;
- every attempt's timeouts shrink to the time left (`_Budget`), and an answer
  is read with a size cap and a total time cap (`_read_body`);
- a TLS handshake that breaks counts as a connection that never opened (it
  sent nothing), not as a read error (`_HTTPSConnection`);
- proxies and CA bundles are decided once from the environment
  (`proxies.proxy_for`) and passed explicitly: `trust_env` is off so
  `.netrc` is never read.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from zenml_action.errors import ConnectionFailed, OutOfTime, ProxyFailed, ServerError

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
USER_AGENT = "zenml-pipeline-trigger-action"
# ZenML's largest answers (a page of hydrated snapshots) are a few MB.
MAX_BODY_BYTES = 32 * 1024 * 1024

# How a request may be repeated (see `RetryPolicy.retry_for`):
#   read:  safe to repeat on anything (GET)
#   login: creates nothing, so busy answers are asked again too
#   once:  may create something (the trigger): only a connection that never
#          opened is repeated; the trigger's tag lookup covers the rest
RetryKind = Literal["read", "login", "once"]


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
    retry: RetryKind | None = None

    @property
    def retry_kind(self) -> RetryKind:
        return self.retry or ("read" if self.method == "GET" else "once")


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
        from a proxy, a truncated body, nesting too deep to decode)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None


class Deadline:
    """A point in time every request and back-off must end by."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def left(self) -> float:
        return max(0.0, self.at - self._clock())


# -- retries and time ---------------------------------------------------------


class _Retry(Retry):
    """urllib3's Retry that knows the deadline: a back-off or Retry-After
    that would end past it raises `_OutOfTime` instead of sleeping."""

    deadline: Deadline | None = None
    log: Callable[[str], None] = staticmethod(lambda message: None)

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.deadline, retry.log = self.deadline, self.log
        return retry

    def sleep(self, response: urllib3.BaseHTTPResponse | None = None) -> None:
        delay = None
        if self.respect_retry_after_header and response is not None:
            delay = self.get_retry_after(response)
        if delay is None:
            delay = self.get_backoff_time()
        left = self.deadline.left() if self.deadline else float("inf")
        last = self.history[-1] if self.history else None
        why = f"HTTP {last.status}" if last and last.status else type(last.error).__name__ if last else "?"
        if delay >= left:
            raise _OutOfTime(last.status if last else None)
        self.log(f"retrying after {why} in {delay:.1f}s ({left:.0f}s left)")
        time.sleep(delay)


class _OutOfTime(Exception):
    def __init__(self, status: int | None) -> None:
        self.status = status
        super().__init__("out of time")


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy: what is retried, how often and how long apart."""

    connect: int = 4
    read: int = 2
    status: int = 4
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    backoff_factor: float = 0.5
    backoff_max: float = 10.0
    jitter: float = 0.5
    retry_after_max: int = 30

    def retry_for(self, kind: RetryKind, deadline: Deadline | None, log: Callable[[str], None]) -> Retry:
        repeatable = kind != "once"
        retry = _Retry(
            total=None,
            connect=self.connect,
            read=self.read if repeatable else 0,
            status=self.status if repeatable else 0,
            other=0,  # a proxy's 407, a certificate that does not verify: explained, not repeated
            redirect=0,
            allowed_methods=None,  # the kind decided what may be repeated
            status_forcelist=self.statuses if repeatable else (),
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            backoff_jitter=self.jitter,
            retry_after_max=self.retry_after_max,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
        )
        retry.deadline, retry.log = deadline, log
        return retry


class _Budget(urllib3.Timeout):
    """Connect and read timeouts that never exceed the time left: urllib3
    reads them afresh for each attempt."""

    def __init__(self, connect: float, read: float, deadline: Deadline | None) -> None:
        super().__init__(connect=connect, read=read)
        self.deadline = deadline

    def clone(self) -> _Budget:
        return _Budget(self._connect, self._read, self.deadline)  # type: ignore[arg-type]

    def _capped(self, seconds: float | None) -> float | None:
        if self.deadline is None:
            return seconds
        left = max(0.05, self.deadline.left())
        return left if seconds is None else min(seconds, left)

    @property
    def connect_timeout(self) -> float | None:
        return self._capped(super().connect_timeout)  # type: ignore[arg-type]

    @property
    def read_timeout(self) -> float | None:
        return self._capped(super().read_timeout)


# -- connections -----------------------------------------------------------------


def _sending_deadline() -> Deadline | None:
    """The deadline of the request this thread is sending (`_Adapter.retrying`)."""
    retry = getattr(_Adapter._per_thread, "retry", None)
    return getattr(retry, "deadline", None)


def _cut(sock: socket.socket) -> None:
    """End a connection from another thread: its blocked read returns."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the TCP socket under TLS too
    except OSError:
        pass


class _Watched:
    """Headers that trickle in a byte at a time pass every read timeout: a
    timer ends the connection when the deadline comes (the body is read
    within it by `_read_body`)."""

    sock: socket.socket | None

    def getresponse(self) -> Any:
        deadline, sock = _sending_deadline(), self.sock
        if deadline is None or sock is None:
            return super().getresponse()  # type: ignore[misc]
        timer = threading.Timer(deadline.left(), _cut, args=(sock,))
        timer.daemon = True
        timer.start()
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            timer.cancel()


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    """Classify what can fail while a TLS connection opens, for `Retry`:
    - a handshake that is reset, cut or silent sent no request: a connection
      that never opened, safe to repeat for any method (urllib3 would count
      it as a read error, never repeated for a POST);
    - a proxy that refuses the CONNECT tunnel (407 among others): an error
      to explain, not to repeat (urllib3 would count it as a read error);
    - a certificate that does not verify, and other TLS errors, pass as they
      are: repeating them cannot help."""

    def connect(self) -> None:
        try:
            super().connect()
        except OSError as exc:
            if str(exc).startswith("Tunnel connection failed"):
                raise ProxyError("the proxy refused the tunnel", exc) from exc
            if isinstance(exc, ConnectionError | ssl.SSLEOFError | ssl.SSLZeroReturnError | TimeoutError):
                raise NewConnectionError(self, f"the TLS handshake broke ({type(exc).__name__})") from exc
            raise


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter with a retry policy per request. requests reads
    `max_retries` from the adapter for every send; here it is per thread, so
    the threads sharing the session's connections each send with their own."""

    _per_thread = threading.local()

    @property
    def max_retries(self) -> Retry:
        return getattr(self._per_thread, "retry", None) or Retry(0, read=False)

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._per_thread.retry = value

    @contextmanager
    def retrying(self, retry: Retry) -> Iterator[None]:
        self._per_thread.retry = retry
        try:
            yield
        finally:
            self._per_thread.retry = None

    def __init__(self, trust: ssl.SSLContext | None) -> None:
        self._trust = trust
        super().__init__(pool_connections=1, pool_maxsize=4)

    def _use_own_pools(self, manager: Any) -> Any:
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, ssl_context=self._trust, **kwargs)
        self._use_own_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, ssl_context=self._trust, **proxy_kwargs)
        return self._use_own_pools(manager)


def system_trust() -> ssl.SSLContext:
    """The system's CAs (SSL_CERT_FILE/SSL_CERT_DIR apply): a corporate CA
    installed on a self-hosted runner stays trusted; requests adds certifi's
    bundle, or the `ca-bundle`, to it."""
    return ssl.create_default_context()


class Transport:
    """One `requests.Session` per action run: kept-alive connections shared
    by the threads that send (the login and `/info` go out side by side)."""

    def __init__(
        self,
        base_url: str,
        cafile: str | None = None,
        proxy: str = "",
        policy: RetryPolicy | None = None,
        deadline: Deadline | None = None,
        log: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.base_url = base_url
        self.proxy = proxy
        self.policy = policy or RetryPolicy()
        self.deadline = deadline
        self.log = log
        self.session = requests.Session()
        self.session.trust_env = False  # proxies and CAs are passed below; never .netrc
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        # Loading the system's CAs takes 25-45 ms: only where TLS is spoken.
        tls = base_url.startswith("https://") or proxy.startswith("https://")
        self._adapter = _Adapter(system_trust() if tls else None)
        self.session.mount("https://", self._adapter)
        self.session.mount("http://", self._adapter)
        self.verify: bool | str = cafile or True
        self.proxies = {"http": proxy, "https": proxy} if proxy else {}


def encode(request: Request, token: str | None, base_url: str) -> requests.PreparedRequest:
    headers = {}
    if token and request.authenticated:
        headers["Authorization"] = f"Bearer {token}"
    return requests.Request(
        request.method,
        base_url + request.path,
        params=request.params or None,
        json=request.json,
        data=request.form,
        headers=headers,
    ).prepare()


def _read_body(raw: urllib3.BaseHTTPResponse, deadline: Deadline | None, purpose: str, base_url: str) -> bytes:
    """The whole answer, at most MAX_BODY_BYTES and within the deadline:
    each read returns what has arrived (read1), so a trickling answer cannot
    hold the action past its time."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = raw.read1(65536, decode_content=True)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ServerError(
                f"The answer from {base_url} while {purpose} was larger than "
                f"{MAX_BODY_BYTES // 2**20} MB, far more than a ZenML server sends. Check "
                "`workspace-url` and any proxy between the runner and the server."
            )
        if deadline is not None and deadline.left() <= 0:
            raise _OutOfTime(None)
        chunks.append(chunk)


def send(
    transport: Transport,
    request: Request,
    token: str | None,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    deadline: Deadline | None = None,
) -> Response:
    """Send with the retries that are safe for the request, within the
    deadline (the transport's, unless one is given). A POST that may have
    reached the server is not repeated here: the caller knows whether that
    could create a second run."""
    deadline = deadline or transport.deadline
    prepared = encode(request, token, transport.base_url)
    policy = transport.policy
    # urllib3 repeats what fails up to the answer's headers; an answer whose
    # body breaks off is repeated here, by the same rule (reads: GET, login).
    body_retries = policy.read if request.retry_kind != "once" else 0
    for attempt in range(body_retries + 1):
        try:
            return _exchange(transport, prepared, request, timeout, deadline)
        except (ProtocolError, ReadTimeoutError) as exc:
            if attempt == body_retries:
                raise translate_exception(exc, transport, request, timeout) from exc
            transport.log(f"the answer broke off ({type(exc).__name__}); reading again")
            pause = policy.backoff_factor * attempt
            if deadline is not None and pause >= deadline.left():
                raise OutOfTime(request.purpose) from exc
            time.sleep(pause)
    raise AssertionError("unreachable")


def _exchange(
    transport: Transport,
    prepared: requests.PreparedRequest,
    request: Request,
    timeout: tuple[float, float],
    deadline: Deadline | None,
) -> Response:
    retry = transport.policy.retry_for(request.retry_kind, deadline, transport.log)
    try:
        with transport._adapter.retrying(retry):
            answer = transport.session.send(
                prepared,
                stream=True,
                timeout=_Budget(timeout[0], timeout[1], deadline),  # type: ignore[arg-type]  # requests passes a urllib3 Timeout through
                allow_redirects=False,
                verify=transport.verify,
                proxies=transport.proxies,
            )
        try:
            body = _read_body(answer.raw, deadline, request.purpose, transport.base_url)
        finally:
            answer.close()
    except _OutOfTime as exc:
        raise OutOfTime(request.purpose, exc.status) from None
    except (ProtocolError, ReadTimeoutError):
        raise  # the body broke off: `send` decides
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise translate_exception(exc, transport, request, timeout) from exc
    return Response(answer.status_code, {k.lower(): v for k, v in answer.headers.items()}, body)


# -- what went wrong, in the user's terms ---------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps, outermost first, through requests'
    and urllib3's wrappers."""
    chain = [exc]
    while len(chain) < 10:
        current = chain[-1]
        inner: Any = None
        if isinstance(current, MaxRetryError):
            inner = current.reason
        elif isinstance(current, ProxyError):
            inner = current.original_error
        elif current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]
        if not isinstance(inner, BaseException):
            break
        chain.append(inner)
    return chain


def translate_exception(
    exc: BaseException, transport: Transport, request: Request, timeout: tuple[float, float]
) -> ConnectionFailed:
    base_url, purpose = transport.base_url, request.purpose
    causes = _causes(exc)
    root = causes[-1]
    text = str(root)
    if transport.proxy and (isinstance(exc, requests.exceptions.ProxyError) or "Tunnel connection failed" in text):
        shown = _proxy_shown(transport.proxy)
        if " 407 " in f" {text} ":
            return ProxyFailed(
                f"The proxy {shown} (from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY) refused its credentials "
                f"(HTTP 407) while {purpose}. Put a valid user and password in the proxy URL "
                "(http://user:password@proxy:port), or add the server's host to NO_PROXY."
            )
        return ProxyFailed(
            f"Could not reach {base_url} through the proxy {shown} (from HTTPS_PROXY/HTTP_PROXY/"
            f"ALL_PROXY) while {purpose}: {_short(text)}. Check the proxy, or add the server's "
            "host to NO_PROXY if it should be reached directly."
        )
    if isinstance(root, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return ConnectionFailed(
            f"The TLS certificate of {base_url} did not verify while {purpose} "
            f"({getattr(root, 'verify_message', '') or _short(text)}). If the server uses a private "
            "CA, pass its PEM bundle in `ca-bundle`."
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return ConnectionFailed(
            f"The TLS connection to {base_url} failed while {purpose} ({_short(text)}). Check that "
            "`workspace-url` uses https only for a server that speaks TLS on that port."
        )
    if any(isinstance(cause, ConnectTimeoutError) for cause in causes):  # NewConnectionError included
        if isinstance(root, TimeoutError | ConnectTimeoutError) and not isinstance(root, NewConnectionError):
            why = f"no connection within {timeout[0]:g}s"
        elif "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            why = "the host name does not resolve"
        else:
            why = _short(text)
        return ConnectionFailed(
            f"Could not connect to {base_url} while {purpose} ({why}), even after retries. Check "
            "`workspace-url` (scheme, host, port) and that the server is running and reachable "
            "from the runner."
        )
    if isinstance(root, ReadTimeoutError | TimeoutError) or isinstance(exc, requests.exceptions.ReadTimeout):
        return ConnectionFailed(
            f"{base_url} did not answer in time while {purpose}. The server may be overloaded; "
            "try again later.",
            maybe_sent=True,
        )
    if isinstance(exc, requests.exceptions.InvalidURL | ValueError):
        return ConnectionFailed(f"The address {base_url} cannot be used ({_short(text)}). Check `workspace-url`.")
    return ConnectionFailed(
        f"The connection to {base_url} broke while {purpose} ({type(root).__name__}). A proxy "
        "or the server dropped it; try again later.",
        maybe_sent=True,
    )


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _proxy_shown(proxy: str) -> str:
    """The proxy's address without its credentials."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
