"""The action goes through the proxy the runner's environment names, as curl
and requests do.

- An `http://` server is reached through `http_proxy` / `HTTP_PROXY`
  (absolute-form requests), an `https://` one through `https_proxy` /
  `HTTPS_PROXY` (a CONNECT tunnel, TLS end to end: the proxy reads nothing).
- When both spellings are set, the lowercase one wins.
- `no_proxy` / `NO_PROXY` (lowercase first) lists hosts reached directly: a
  host, a domain with or without its leading dot (covering its subdomains),
  `host:port`, or `*`; comma separated, spaces allowed.
- A proxy that cannot be reached ends in one clear error.

Each case sets its own proxy variables and no others (`ActionRunner` drops
the outer environment's), so nothing else can change the route. The server is the real test
server at 127.0.0.1, or the same server under a DNS name: `zenml.example.test`
resolves to 127.0.0.1 in the action's process (a `sitecustomize` hook) and in
the proxy, so host and domain entries are tried on a real name.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Deployment
from support.action import ROOT, ActionResult, ActionRunner, leaked
from support.fault_proxy import Recorder
from support.forward_proxy import ForwardProxy, Seen
from support.orchestrator import run_details

IP = "127.0.0.1"
NAME = "zenml.example.test"
TRIGGER = {"template": "trainer-prod", "wait": "false"}
KEY = "ZENKEY_" + "p" * 40

RESOLVER = '''\
"""Written by tests/test_proxy.py: names under example.test are loopback."""
import socket

_getaddrinfo = socket.getaddrinfo


def _example_test_is_loopback(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and (name == "example.test" or name.endswith(".example.test")):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _example_test_is_loopback
'''


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(hosts={NAME: IP}) as forward_proxy:
        yield forward_proxy


@pytest.fixture
def dead_proxy() -> Iterator[str]:
    """A proxy URL whose port refuses connections (held, bound, not listening)."""
    with socket.socket() as sock:
        sock.bind((IP, 0))
        yield f"http://{IP}:{sock.getsockname()[1]}"


@pytest.fixture
def resolver(tmp_path: Path) -> dict[str, str]:
    """The environment that makes `zenml.example.test` resolve to 127.0.0.1
    in the action's process."""
    hook = tmp_path / "resolver"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RESOLVER)
    return {"PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)])}


def trigger(zenml: Deployment, workspace: Path, host: str, env: dict[str, str]) -> ActionResult:
    """Trigger `trainer-prod` on the test server, addressed as `host`."""
    inputs = {"workspace-url": f"http://{host}:{zenml.server.port}", "api-key": zenml.api_key}
    if host != IP:
        inputs["allow-insecure-http"] = "true"  # plain http to a name that is not `localhost`
    return ActionRunner(workspace, base_inputs=inputs).run(TRIGGER, extra_env=env)


def assert_triggered(result: ActionResult, zenml: Deployment) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.errors == []
    assert result.outputs["conclusion"] == "triggered"
    assert run_details(zenml.server, result.outputs["run-id"])["id"] == result.outputs["run-id"]


def assert_all_proxied(seen: list[Seen], origin: str, zenml: Deployment) -> None:
    """Every request reached the proxy in absolute form for `origin`; among
    them the login and the trigger."""
    assert seen, "nothing went through the proxy"
    assert all(s.method != "CONNECT" and s.target.startswith(f"{origin}/api/v1/") for s in seen), seen
    requests = [(s.method, s.target) for s in seen]
    assert ("POST", f"{origin}/api/v1/login") in requests
    assert ("POST", f"{origin}/api/v1/pipeline_snapshots/{zenml.snapshots['trainer']}/runs") in requests


# -- http:// through the proxy ----------------------------------------------------


def test_an_http_server_is_reached_through_http_proxy(zenml: Deployment, workspace: Path, proxy: ForwardProxy) -> None:
    """Everything goes through the proxy, which sees plain HTTP: the login
    (whose form carries the key) and the requests bearing the token."""
    env = {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url}

    result = trigger(zenml, workspace, IP, env)

    assert_triggered(result, zenml)
    seen = proxy.seen
    assert_all_proxied(seen, zenml.url, zenml)
    assert all(s.headers["host"] == f"{IP}:{zenml.server.port}" for s in seen)
    login = next(s for s in seen if s.target.endswith("/api/v1/login"))
    assert "authorization" not in login.headers and leaked(zenml.api_key, login.body.decode())
    runs = next(s for s in seen if re.search(r"/pipeline_snapshots/[^/]+/runs$", s.target))
    assert runs.headers["authorization"].startswith("Bearer ")
    # No proxy credentials were configured, so none are sent.
    assert not any("proxy-authorization" in s.headers for s in seen)


# Which requests go through the proxy. `{proxy}` is the recording proxy,
# `{dead}` a port that refuses connections, `{port}` the server's port.
BOTH = {"http_proxy": "{proxy}", "HTTP_PROXY": "{proxy}"}
ROUTES = [
    # Which variable applies to an http:// server.
    pytest.param(IP, {"HTTP_PROXY": "{proxy}"}, True, id="HTTP_PROXY-alone"),
    pytest.param(IP, {"http_proxy": "{proxy}"}, True, id="http_proxy-alone"),
    pytest.param(IP, {"http_proxy": "{proxy}", "HTTP_PROXY": "{dead}"}, True, id="http_proxy-wins-over-HTTP_PROXY"),
    pytest.param(IP, {"https_proxy": "{dead}", "HTTPS_PROXY": "{dead}"}, False, id="https_proxy-is-not-for-http"),
    # no_proxy entries that cover 127.0.0.1.
    pytest.param(IP, {**BOTH, "no_proxy": IP, "NO_PROXY": IP}, False, id="ip"),
    pytest.param(IP, {**BOTH, "no_proxy": "*", "NO_PROXY": "*"}, False, id="star"),
    pytest.param(IP, {**BOTH, "no_proxy": "example.com, 127.0.0.1", "NO_PROXY": "example.com, 127.0.0.1"}, False, id="list-with-spaces"),
    pytest.param(IP, {**BOTH, "NO_PROXY": IP}, False, id="NO_PROXY-alone"),
    pytest.param(IP, {**BOTH, "no_proxy": IP, "NO_PROXY": "example.com"}, False, id="no_proxy-wins-bypassing"),
    pytest.param(IP, {**BOTH, "no_proxy": "example.com", "NO_PROXY": IP}, True, id="no_proxy-wins-proxying"),
    pytest.param(IP, {**BOTH, "no_proxy": "example.com,localhost"}, True, id="other-hosts"),
    # no_proxy entries against a DNS name: zenml.example.test.
    pytest.param(NAME, {**BOTH}, True, id="name-proxied"),
    pytest.param(NAME, {**BOTH, "no_proxy": NAME}, False, id="name"),
    pytest.param(NAME, {**BOTH, "no_proxy": "example.test"}, False, id="domain"),
    pytest.param(NAME, {**BOTH, "no_proxy": ".example.test"}, False, id="dot-domain"),
    pytest.param(NAME, {**BOTH, "no_proxy": "EXAMPLE.test"}, False, id="domain-any-case"),
    pytest.param(IP, {**BOTH, "no_proxy": IP + ":{port}"}, False, id="ip-and-port"),
    pytest.param(IP, {**BOTH, "no_proxy": IP + ":1"}, True, id="ip-and-another-port"),
    pytest.param(NAME, {**BOTH, "no_proxy": NAME + ":{port}"}, False, id="name-and-port"),
    pytest.param(NAME, {**BOTH, "no_proxy": NAME + ":1"}, True, id="name-and-another-port"),
    pytest.param(NAME, {**BOTH, "no_proxy": "ample.test"}, True, id="suffix-not-on-a-dot"),
    pytest.param(NAME, {**BOTH, "no_proxy": "other.example.test"}, True, id="sibling-name"),
]


@pytest.mark.parametrize(("host", "variables", "proxied"), ROUTES)
def test_which_requests_go_through_the_proxy(
    zenml: Deployment,
    workspace: Path,
    proxy: ForwardProxy,
    dead_proxy: str,
    resolver: dict[str, str],
    host: str,
    variables: dict[str, str],
    proxied: bool,
) -> None:
    """The run is triggered either way; the proxy sees all of it or none of it."""
    values = {k: v.format(proxy=proxy.url, dead=dead_proxy, port=zenml.server.port) for k, v in variables.items()}

    result = trigger(zenml, workspace, host, {**values, **resolver})

    assert_triggered(result, zenml)
    if proxied:
        assert_all_proxied(proxy.seen, f"http://{host}:{zenml.server.port}", zenml)
    else:
        assert proxy.seen == []


# -- https:// through a CONNECT tunnel ---------------------------------------------


def test_an_https_server_is_reached_through_a_connect_tunnel(
    https_server: tuple[Recorder, Path], workspace: Path, proxy: ForwardProxy, dead_proxy: str
) -> None:
    """`https_proxy` (not `http_proxy`, here a dead port) opens a tunnel to
    the server; TLS runs end to end, so the proxy sees the CONNECT and
    ciphertext, never the key."""
    server, _ = https_server
    env = {"https_proxy": proxy.url, "HTTPS_PROXY": proxy.url, "http_proxy": dead_proxy, "HTTP_PROXY": dead_proxy}
    runner = ActionRunner(workspace, base_inputs={"workspace-url": server.url, "api-key": KEY})

    result = runner.run({**TRIGGER, "ca-bundle": "certs/ca.pem"}, extra_env=env)

    # The server's 401 came back through the tunnel.
    assert result.returncode == 1
    assert len(result.errors) == 1 and "title=ZenML authentication failed" in result.errors[0], result.stdout
    assert "/api/v1/login" in [r.path for r in server.received]
    seen = proxy.seen
    assert {(s.method, s.target) for s in seen} == {("CONNECT", f"{IP}:{server.port}")}
    assert all(s.tunnelled for s in seen)
    assert not any(leaked(KEY, s.readable()) for s in seen)
    assert not any("authorization" in s.headers or "proxy-authorization" in s.headers for s in seen)


# -- a proxy that cannot be reached ---------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_unreachable_proxy_is_one_clear_error(
    zenml: Deployment, https_server: tuple[Recorder, Path], workspace: Path, dead_proxy: str, scheme: str
) -> None:
    """A proxy variable naming a closed port fails the step with one
    `::error::` naming the server, no traceback, no outputs: not a hang, and
    no attempt to go around the proxy."""
    server, _ = https_server
    url = zenml.url if scheme == "http" else server.url
    env = {f"{scheme}_proxy": dead_proxy, f"{scheme.upper()}_PROXY": dead_proxy}
    runner = ActionRunner(workspace, base_inputs={"workspace-url": url, "api-key": KEY, "ca-bundle": "certs/ca.pem"})

    result = runner.run(TRIGGER, extra_env=env)

    assert result.returncode != 0
    assert len(result.errors) == 1, result.stdout
    assert "title=Proxy problem" in result.errors[0]
    assert url in result.errors[0] and dead_proxy in result.errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert result.outputs == {}
    assert server.received == []
