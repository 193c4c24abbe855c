"""The one place that does HTTP (`send`): `requests`, with urllib3's `Retry`;
what they, ssl or the OS raise leaves it as the action's error (`explain`).
Time is the deadline's business (`deadline.bounded` interrupts any read or
back-off sleep); an endless answer ends at MAX_BODY_BYTES."""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
import requests.adapters
from urllib3 import ProxyManager
from urllib3.util.retry import Retry

from zenml_action.errors import ServerError
from zenml_action.http_failures import explain

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
USER_AGENT = "zenml-pipeline-trigger-action"
# ZenML's largest answers (a page of hydrated snapshots) are a few MB.
MAX_BODY_BYTES = 32 * 1024 * 1024

# How a request may be repeated (`RetryPolicy.retry_for`):
#   read:  safe to repeat on anything (GET)
#   login: creates nothing, so busy and broken answers are asked again too
#   once:  may create something (the trigger): only a connection that never
#          opened is repeated; the trigger's run key covers the rest
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
            value = json.loads(self.body)
        except (ValueError, RecursionError):
            return None
        # `"\ud800"` decodes to a lone surrogate, which no output, summary
        # or log line can encode: it becomes U+FFFD.
        return _encodable(value) if _SURROGATE.search(self.body) else value


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """The one retry policy: what is retried, how often and how long apart."""

    read: int = 2
    backoff_factor: float = 0.5
    retry_after_max: int = 30

    def retry_for(self, kind: RetryKind) -> Retry:
        repeatable = kind != "once"
        return Retry(
            total=None, connect=4, read=self.read if repeatable else 0, status=4 if repeatable else 0,
            other=0,  # a proxy's 407, a certificate that does not verify: explained, not repeated
            redirect=0, raise_on_redirect=False,
            allowed_methods=None,  # the kind decided what may be repeated
            status_forcelist={429, 502, 503, 504} if repeatable else (),
            backoff_factor=self.backoff_factor, backoff_max=10.0, backoff_jitter=0.5,
            retry_after_max=self.retry_after_max,
            raise_on_status=False,  # the last busy answer is returned: the caller explains it
        )


# The system's CAs (SSL_CERT_FILE/SSL_CERT_DIR apply): a corporate CA installed on a
# self-hosted runner stays trusted; requests adds certifi's bundle, or the `ca-bundle`, to it.
system_trust = ssl.create_default_context


class _Adapter(requests.adapters.HTTPAdapter):
    """requests hands urllib3 the adapter's retries: each retry kind has its own adapter, all over the pools
    of the first (`shared`), so the login, `/info` and the trigger share one kept-alive connection (one TLS
    handshake, not three)."""

    def __init__(self, retry: Retry, trust: ssl.SSLContext | None, shared: _Adapter | None = None) -> None:
        self.trust = trust  # first: the base class builds its pools in __init__
        super().__init__(pool_connections=1, pool_maxsize=4, max_retries=retry)
        if shared is not None:
            self.poolmanager, self.proxy_manager = shared.poolmanager, shared.proxy_manager

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, ssl_context=self.trust, **kwargs)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> ProxyManager:
        return super().proxy_manager_for(proxy, ssl_context=self.trust, **kwargs)  # type: ignore[no-any-return]


class Transport:
    """One per action run, shared by threads (the login goes out beside `/info`). No `requests.Session`: no
    redirect is followed, and no proxy, CA bundle or .netrc is read from the environment (`proxies.py` and
    `inputs.py` decide them once)."""

    def __init__(self, base_url: str, cafile: str | None = None, proxy: str = "") -> None:
        self.base_url, self.proxy = base_url, proxy
        self.policy = RetryPolicy()
        self.verify: bool | str = cafile or True
        self.proxies = {"http": proxy, "https": proxy} if proxy else {}
        # Loading the system's CAs takes 25-45 ms: only where TLS is spoken.
        trust = system_trust() if any(url.startswith("https://") for url in (base_url, proxy)) else None
        reads = _Adapter(self.policy.retry_for("read"), trust)
        self.adapters: dict[RetryKind, _Adapter] = {"read": reads}
        for kind in ("login", "once"):
            self.adapters[kind] = _Adapter(self.policy.retry_for(kind), trust, shared=reads)


def encode(request: Request, token: str | None, base_url: str) -> requests.PreparedRequest:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token and request.authenticated:
        headers["Authorization"] = f"Bearer {token}"
    return requests.Request(
        request.method, base_url + request.path, headers, params=request.params or None,
        json=request.json, data=request.form,
    ).prepare()


def send(
    transport: Transport,
    request: Request,
    token: str | None,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
) -> Response:
    """The answer, after the retries that are safe for the request. A failure after the request may have
    reached the server raises `ConnectionFailed(maybe_sent=True)`: whether sending again could create a second
    run is the caller's to decide."""
    kind = request.retry_kind
    # urllib3 repeats what fails up to the answer's headers; an answer whose
    # body breaks off is asked again here, by the same rule.
    body_retries = 0 if kind == "once" else transport.policy.read
    for attempt in range(body_retries + 1):
        try:
            prepared = encode(request, token, transport.base_url)
            answer = transport.adapters[kind].send(
                prepared, stream=True, timeout=timeout, verify=transport.verify, proxies=transport.proxies
            )
        except (OSError, ValueError) as exc:  # requests' own errors are OSErrors
            raise explain(exc, transport.base_url, transport.proxy, request.purpose, timeout[0]) from exc
        body = bytearray()
        try:
            with answer:
                for chunk in answer.iter_content(65536):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise ServerError(
                            f"The answer from {transport.base_url} while {request.purpose} was larger than "
                            f"{MAX_BODY_BYTES // 2**20} MB, far more than a ZenML server sends. Check "
                            "`workspace-url` and any proxy between the runner and the server."
                        )
            headers = {k.lower(): v for k, v in answer.headers.items()}
            return Response(answer.status_code, headers, bytes(body))
        except requests.RequestException as exc:
            if attempt == body_retries:
                raise explain(exc, transport.base_url, transport.proxy, request.purpose, timeout[0]) from exc
            time.sleep(transport.policy.backoff_factor * attempt)  # the first at once, as urllib3's
    raise AssertionError("unreachable: the last attempt returns or raises")
