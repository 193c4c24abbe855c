"""How to reach the server, checked before any request: `workspace-url`,
`api-key`, and the proxy and CA bundles a runner names in its environment.
A mistake here is an input error, not a failed handshake or a 401."""

from __future__ import annotations

import ipaddress
import re
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from zenml_action.errors import InputError
from zenml_action.github import quoted

MAX_URL_LENGTH = 2048
# ZenML keys are about 150 characters; leave room for longer Pro keys.
MAX_API_KEY_LENGTH = 4096
API_KEY_PATTERN = re.compile(r"(ZENKEY|ZENPROKEY)_[A-Za-z0-9_\-+/=.]{8,}")
PROXY_NAME = "HTTPS_PROXY/HTTP_PROXY/ALL_PROXY"
FIX_BASE_URL = "Give the server's base URL only."
FIX_PROXY = "Fix the proxy URL, e.g. http://proxy.example.com:3128."


def parse_workspace_url(raw: str, allow_insecure_http: bool) -> str:
    name = "workspace-url"
    url = raw.strip()
    if not url:
        fix = "Set it to your ZenML server or ZenML Pro workspace URL, or set the ZENML_STORE_URL environment variable."
        raise InputError(name, "is not set.", fix)
    if any(c.isspace() or not c.isprintable() for c in url):
        fix = "Give a single URL such as https://zenml.example.com."
        raise InputError(name, "contains white space or control characters.", fix)
    if len(url) > MAX_URL_LENGTH:
        raise InputError(name, f"is longer than {MAX_URL_LENGTH} characters.", FIX_BASE_URL)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. `http://[::1` (an unclosed IPv6 bracket)
        raise InputError(name, f"{quoted(url)} is not a valid URL ({exc}).", "Give the full URL, e.g. https://zenml.example.com.") from exc
    host = parts.hostname or ""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if parts.scheme not in ("http", "https") or not host:
        fix = "Give the full URL with its scheme, e.g. https://zenml.example.com."
        raise InputError(name, f"{quoted(url)} is not an http(s) URL.", fix)
    if parts.username is not None or parts.password is not None:
        fix = "Remove them from the URL and pass a service-account key in `api-key`."
        raise InputError(name, "contains credentials (user:password@).", fix)
    if parts.query or parts.fragment:
        raise InputError(name, "has a query or fragment.", FIX_BASE_URL)
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if parts.scheme == "http" and not loopback and not allow_insecure_http:
        problem = f"{quoted(url)} uses plain http to a non-local host, which would send your API key unencrypted."
        raise InputError(name, problem, "Use https, or set `allow-insecure-http: true` if the network is trusted.")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise InputError(name, f"{quoted(url)} has an invalid port.", "Fix the port number.") from exc
    try:
        # A host name DNS can look up: labels of 1 to 63 characters (IDNA
        # for non-ASCII names), or an IP address.
        if address is None:
            host.encode("idna")
    except UnicodeError as exc:
        problem = f"has an invalid host name {quoted(host)}: each dot-separated part must be 1 to 63 characters."
        raise InputError(name, problem, "Check the URL for a doubled dot or a missing part.") from exc
    path = parts.path.rstrip("/").removesuffix("/api/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def parse_api_key(raw: str) -> str:
    if not raw:
        fix = (
            "Create a service account API key (`zenml service-account create NAME`), "
            "store it as a repository secret and pass it: `api-key: ${{ secrets.ZENML_API_KEY }}`."
        )
        raise InputError("api-key", "is not set.", fix)
    if len(raw) > MAX_API_KEY_LENGTH:
        fix = "Pass a service-account API key (ZENKEY_... or ZENPROKEY_...) alone."
        raise InputError("api-key", f"is {len(raw)} characters long, far longer than a ZenML API key.", fix)
    if raw != raw.strip() or "\n" in raw or "\r" in raw:
        fix = "Re-create the secret with the key alone, without a trailing newline."
        raise InputError("api-key", "has leading/trailing white space or a line break.", fix)
    if not API_KEY_PATTERN.fullmatch(raw):
        problem = "does not look like a ZenML API key (it should start with ZENKEY_ or ZENPROKEY_)."
        raise InputError("api-key", problem, "Pass a service-account API key, not a password, token or URL.")
    return raw


def parse_proxy(proxy: str) -> str:
    if not proxy:
        return ""
    url = proxy if "://" in proxy else f"http://{proxy}"
    parts = urlsplit(url)
    shown_url = f"{parts.scheme}://{parts.hostname or ''}"
    if parts.scheme not in ("http", "https"):
        problem = f"(from the environment) names a `{parts.scheme}` proxy ({shown_url}), which the action does not support."
        fix = "Point it at an http:// or https:// proxy, or add the server's host to NO_PROXY."
        raise InputError(PROXY_NAME, problem, fix)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise InputError(PROXY_NAME, f"(from the environment) has an invalid port in its proxy URL ({shown_url}).", FIX_PROXY) from exc
    if not parts.hostname:
        raise InputError(PROXY_NAME, "(from the environment) has no host in its proxy URL.", FIX_PROXY)
    return url


def parse_ca_bundle(name: str, raw: str, path: Path) -> Path:
    """A CA bundle must be a PEM file OpenSSL can load."""
    if not path.is_file():
        raise InputError(name, f"`{raw}` is not a file.", "Give the path of a PEM bundle in the workspace.")
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, ValueError, OSError) as exc:
        fix = "Give a file holding one or more `-----BEGIN CERTIFICATE-----` blocks."
        problem = f"`{raw}` is not a PEM bundle of CA certificates ({type(exc).__name__})."
        raise InputError(name, problem, fix) from exc
    return path
