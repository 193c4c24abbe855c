"""The one place that does HTTP.

Everything else builds `Request` values and reads `Response` values
(`api.py`); `send()` is the only function that touches the network, and the
only place where `requests` exceptions are translated into `ActionError`s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from zenml_action.errors import ConnectionFailed

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
USER_AGENT = "zenml-pipeline-trigger-action"


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


def make_session(ca_bundle: Path | None) -> requests.Session:
    """A session that retries what is safe to retry.

    Connection errors before a request is sent are retried for every method
    (nothing reached the server). Status and read retries apply to GET only:
    a POST that may have reached the server is retried by the caller, which
    knows whether that can create a second run.
    """
    retry = Retry(
        total=6,
        connect=4,
        read=2,
        status=4,
        other=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=frozenset({429, 502, 503, 504}),
        backoff_factor=0.5,
        backoff_max=10,
        backoff_jitter=0.5,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=2)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.verify = str(ca_bundle) if ca_bundle else True
    # Proxy settings and REQUESTS_CA_BUNDLE come from the environment as
    # usual; `send()` keeps .netrc out and `ca-bundle` in force.
    session.trust_env = True
    return session


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An explicit (empty) auth: with none, requests would add credentials
    from ~/.netrc, replacing the bearer token."""
    return request


def send(
    session: requests.Session,
    base_url: str,
    request: Request,
    token: str | None,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
) -> Response:
    headers = {"Accept": "application/json"}
    if token and request.authenticated:
        headers["Authorization"] = f"Bearer {token}"
    try:
        raw = session.request(
            request.method,
            base_url + request.path,
            params=request.params or None,
            json=request.json,
            data=request.form,
            headers=headers,
            timeout=timeout,
            # A redirect could carry the token to another host: never follow.
            allow_redirects=False,
            auth=_no_netrc,
            # Given per request, a `ca-bundle` wins over REQUESTS_CA_BUNDLE.
            verify=session.verify,
        )
    except requests.exceptions.SSLError as exc:
        raise ConnectionFailed(
            f"TLS verification failed for {base_url} while {request.purpose}. "
            "If the server uses a private CA, pass its PEM bundle in `ca-bundle`."
        ) from exc
    except requests.exceptions.ConnectTimeout as exc:
        raise ConnectionFailed(
            f"Timed out connecting to {base_url} while {request.purpose}. "
            "Check `workspace-url` and that the server is reachable from the runner."
        ) from exc
    except requests.exceptions.ReadTimeout as exc:
        raise ConnectionFailed(
            f"{base_url} did not answer in {timeout[1]:g}s while {request.purpose}. "
            "The server may be overloaded; try again later.",
            maybe_sent=True,
        ) from exc
    except requests.exceptions.ConnectionError as exc:
        # A connection that could not be opened sent nothing; one dropped
        # after opening may have delivered the request.
        refused = isinstance(exc.args[0] if exc.args else None, urllib3.exceptions.MaxRetryError) and isinstance(
            exc.args[0].reason, urllib3.exceptions.NewConnectionError
        )
        raise ConnectionFailed(
            f"Could not connect to {base_url} while {request.purpose}. "
            "Check `workspace-url` (scheme, host, port) and that the server is "
            "running and reachable from the runner."
            if refused
            else f"The connection to {base_url} broke while {request.purpose}. "
            "A proxy or the server dropped it; try again later.",
            maybe_sent=not refused,
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise ConnectionFailed(
            f"HTTP request to {base_url} failed while {request.purpose}: "
            f"{type(exc).__name__}.",
            maybe_sent=True,
        ) from exc
    return Response(
        status=raw.status_code,
        headers={k.lower(): v for k, v in raw.headers.items()},
        body=raw.content,
    )
