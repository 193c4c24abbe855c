"""What went wrong on the wire, in the user's terms: the one map from what
requests, urllib3, ssl and the OS raise to the action's errors (`http.send`
raises what `explain` returns, from the original)."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ProxyError, ReadTimeoutError

from zenml_action.errors import ConnectionFailed, ProxyFailed
from zenml_action.github import shorten

# Each failure: the action's error, whether the request may have reached the
# server (False only where it cannot have: a POST is then not looked for),
# and the message.
_FAILURES: dict[str, tuple[type[ConnectionFailed], bool, str]] = {
    "proxy credentials": (ProxyFailed, False, "The proxy {proxy} (from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY) refused its credentials (HTTP 407) while {purpose}. Put a valid user and password in the proxy URL (http://user:password@proxy:port), or add the server's host to NO_PROXY."),
    "proxy": (ProxyFailed, False, "Could not reach {server} through the proxy {proxy} (from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY) while {purpose}: {why}. Check the proxy, or add the server's host to NO_PROXY if it should be reached directly."),
    "certificate": (ConnectionFailed, False, "The TLS certificate of {server} did not verify while {purpose} ({why}). If the server uses a private CA, pass its PEM bundle in `ca-bundle`."),
    # Most often the handshake; an answer cut short raises it too.
    "tls": (ConnectionFailed, True, "The TLS connection to {server} failed while {purpose} ({why}). Check that `workspace-url` uses https only for a server that speaks TLS on that port."),
    "no connection": (ConnectionFailed, False, "Could not connect to {server} while {purpose} ({why}), even after retries. Check `workspace-url` (scheme, host, port) and that the server is running and reachable from the runner."),
    "no answer": (ConnectionFailed, True, "{server} did not answer in time while {purpose}. The server may be overloaded; try again later."),
    "address": (ConnectionFailed, False, "The address {server} cannot be used ({why}). Check `workspace-url`."),
    "broke": (ConnectionFailed, True, "The connection to {server} broke while {purpose} ({why}). A proxy or the server dropped it; try again later."),
}


def explain(exc: BaseException, server: str, proxy: str, purpose: str, connect_timeout: float) -> ConnectionFailed:
    """What requests, urllib3, ssl or the OS raised while `purpose` (sent to
    `server`, through `proxy` if any), as the action's error."""
    failure, why = _diagnose(_causes(exc), proxy, connect_timeout)
    error, maybe_sent, message = _FAILURES[failure]
    return error(message.format(server=server, purpose=purpose, proxy=_proxy_shown(proxy), why=why), maybe_sent)


def _diagnose(causes: list[BaseException], proxy: str, connect_timeout: float) -> tuple[str, str]:
    """The `_FAILURES` entry for an exception and what it wraps (outermost
    first), and the detail its message shows."""
    text = shorten(" ".join(str(causes[-1]).split()), 200)

    def caused_by(*kinds: type[BaseException]) -> bool:
        return any(isinstance(cause, kinds) for cause in causes)

    if proxy and caused_by(ProxyError, requests.exceptions.ProxyError):
        return ("proxy credentials" if " 407 " in f" {text} " else "proxy"), text
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return "certificate", cause.verify_message or text
    if caused_by(ssl.SSLError, requests.exceptions.SSLError):
        return "tls", text
    if caused_by(socket.gaierror):
        return "no connection", "the host name does not resolve"
    if caused_by(NewConnectionError):  # a ConnectTimeoutError: before it
        return "no connection", text
    if caused_by(ConnectTimeoutError):
        return "no connection", f"no connection within {connect_timeout:g}s"
    if caused_by(ReadTimeoutError, requests.exceptions.ReadTimeout, TimeoutError):
        return "no answer", text
    if caused_by(ValueError):  # requests' InvalidURL, urllib3's LocationValueError
        return "address", text
    return "broke", type(causes[-1]).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps, outermost first, through requests'
    and urllib3's wrappers (`reason`, `original_error`, an argument)."""
    chain = [exc]
    while len(chain) < 10:
        current = chain[-1]
        candidates = [getattr(current, "reason", None), getattr(current, "original_error", None)]
        inner = next((c for c in [*candidates, *current.args, current.__cause__] if isinstance(c, BaseException)), None)
        if inner is None:
            break
        chain.append(inner)
    return chain


def _proxy_shown(proxy: str) -> str:
    """The proxy's address without its credentials."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"
