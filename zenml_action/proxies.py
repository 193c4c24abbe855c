"""Which proxy a request to the server goes through, decided once from the
environment as curl and requests read it (`inputs.py` calls `proxy_for`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

import requests.utils


def proxy_for(url: str, environ: Mapping[str, str]) -> str:
    """The proxy to reach `url` through ("" for none): `https_proxy`,
    `http_proxy` or `all_proxy` (the lowercase name winning, as in
    urllib), unless `no_proxy` covers the URL."""
    variables: dict[str, str] = {}
    for name in sorted(environ, key=lambda n: n.islower()):  # lowercase last: it wins
        if name.lower().endswith("_proxy") and environ[name].strip():
            variables[name.lower().removesuffix("_proxy")] = environ[name].strip()
    no_proxy = normalise_no_proxy(variables.pop("no", ""), url)
    if no_proxy and requests.utils.should_bypass_proxies(url, no_proxy=no_proxy):
        return ""
    return requests.utils.select_proxy(url, variables) or ""


def normalise_no_proxy(no_proxy: str, url: str) -> str:
    """NO_PROXY entries that requests' matcher reads as curl does: it
    compares `host:port` only with an explicit port in the URL, knows no
    `[::1]` brackets and only IPv4 networks. An entry that covers this URL
    is rewritten to its host name; the others are kept."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    entries = []
    for entry in filter(None, (raw.strip().lower() for raw in no_proxy.split(","))):
        name, entry_port = entry, ""
        if entry.startswith("["):
            name, _, rest = entry[1:].partition("]")
            entry_port = rest.removeprefix(":")
        elif entry.count(":") == 1:
            name, entry_port = entry.split(":")
        try:
            covered = ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False)
        except ValueError:  # a name, not an address or network
            covered = False
        if entry_port and entry_port != port:
            entries.append(entry)  # for another port: kept as it is
        else:
            entries.append(host if covered else name)
    return ",".join(entries)
