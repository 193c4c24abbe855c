"""What requests, urllib3, ssl or the OS raised, as the action's error: which
failure it was, whether the request may have reached the server, and what
to do about it (`explain`, used by `http.send`)."""

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


def explain(exc: BaseException, server: str, proxy: str, purpose: str, connect: float) -> ConnectionFailed:
    """What requests, urllib3, ssl or the OS raised while `purpose`, as the
    action's error (`connect`: the connect timeout)."""
    failure, why = _diagnose(_causes(exc), proxy, connect)
    error, maybe_sent, message = _FAILURES[failure]
    # The proxy's address without its credentials.
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    shown = f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"
    return error(message.format(server=server, purpose=purpose, proxy=shown, why=why), maybe_sent)


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
    rules: list[tuple[tuple[type[BaseException], ...], str, str]] = [
        ((ssl.SSLError, requests.exceptions.SSLError), "tls", text),
        ((socket.gaierror,), "no connection", "the host name does not resolve"),
        ((NewConnectionError,), "no connection", text),  # a ConnectTimeoutError: before it
        ((ConnectTimeoutError,), "no connection", f"no connection within {connect_timeout:g}s"),
        ((ReadTimeoutError, requests.exceptions.ReadTimeout, TimeoutError), "no answer", text),
        ((ValueError,), "address", text),  # requests' InvalidURL, urllib3's LocationValueError
    ]
    broke = ("broke", type(causes[-1]).__name__)
    return next(((failure, why) for kinds, failure, why in rules if caused_by(*kinds)), broke)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps, outermost first, through requests'
    and urllib3's wrappers (`reason`, `original_error`, an argument)."""
    chain = [exc]
    while len(chain) < 10:
        current = chain[-1]
        wrapped = [getattr(current, "reason", None), getattr(current, "original_error", None), *current.args]
        inner = next((c for c in [*wrapped, current.__cause__] if isinstance(c, BaseException)), None)
        if inner is None:
            break
        chain.append(inner)
    return chain

