"""An authenticated ZenML REST client: token handling and error translation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from zenml_action import api
from zenml_action.errors import (
    ActionError,
    AuthenticationFailed,
    NotFound,
    PermissionDenied,
    ProxyFailed,
    ServerCannotRun,
    ServerError,
    ServerRejected,
)
from zenml_action.github import Console
from zenml_action.http import CONNECT_TIMEOUT, READ_TIMEOUT, Request, Response, Transport, send
from zenml_action.inputs import Inputs

# What a refusal means, by status: the error, and its message ({what}: while
# doing what; {said}: the server's own words).
_REFUSALS: dict[int, tuple[type[ActionError], str]] = {
    401: (AuthenticationFailed, "The server refused the credentials {what}. {said}. Check that `api-key` holds a current, active service-account key created on THIS server or workspace (keys are not shared between servers), and that the service account is active."),
    403: (PermissionDenied, "The service account is not allowed to do this {what}. {said}. Give the service account a role that can read snapshots and run pipelines in the project."),
    404: (NotFound, "Not found {what}. {said}."),
    407: (ProxyFailed, "The proxy between the runner and the server refused its credentials (HTTP 407) {what}. Put a valid user and password in the proxy URL (HTTP_PROXY/HTTPS_PROXY: http://user:password@proxy:port), or add the server's host to NO_PROXY."),
    429: (ServerError, "The server is busy and refused the request {what} (HTTP 429), even after retries. {said}. Try again later, or ask the server's operator to raise its limit of concurrent runs."),
    **dict.fromkeys((400, 409, 422), (ServerRejected, "The server refused the request {what}. {said}.")),
}
_SERVER_FAILED = "The server failed {what} (HTTP {status}). {said}. This is a problem on the server; if it persists, check the server's logs."
_UNEXPECTED = "Unexpected HTTP {status} {what}. {said}."


def translate(response: Response, request: Request) -> ActionError:
    """What a failed response means for the user, and what to do about it."""
    status = response.status
    if status == 405 and request.method == "POST" and request.path.endswith("/runs"):
        return ServerCannotRun(
            "The server does not run snapshots itself (HTTP 405 on the run endpoint): an open-source ZenML "
            "server needs a workload manager for that. Use a ZenML Pro workspace, configure a workload "
            "manager on your self-hosted server (ZENML_SERVER_WORKLOAD_MANAGER_IMPLEMENTATION_SOURCE), "
            "or run the pipeline from your repository's code with `pipeline: path/to/file.py:pipeline`."
        )
    error, message = _REFUSALS.get(status) or (ServerError, _SERVER_FAILED if status >= 500 else _UNEXPECTED)
    what = f"while {request.purpose}" if request.purpose else ""
    said = f"The server said: {api.decode_error(response).rstrip('.')}"
    return error(message.format(what=what, said=said, status=status))


class ZenMLClient:
    def __init__(self, transport: Transport, api_key: str, console: Console, read_timeout: float = READ_TIMEOUT) -> None:
        self.transport, self.base_url = transport, transport.base_url
        self.timeout = (CONNECT_TIMEOUT, read_timeout)
        self._api_key, self._console = api_key, console
        self.token: str | None = None

    def login(self) -> None:
        """Exchange the key for a token. A busy or dropped login is repeated
        by the transport (it creates nothing); a refusal never is: with login
        rate limiting on, each refused login uses up part of a small budget."""
        request = api.login(self._api_key)
        response = self._send(request)
        if not response.ok:
            error = translate(response, request)
            if response.status in (404, 405):
                path = urlsplit(self.base_url).path
                raise ServerError(
                    f"{self.base_url} does not answer as a ZenML server: logging in there answered "
                    f"HTTP {response.status}. Check `workspace-url`"
                    + (f": its path `{path}` may not belong in it (give the server's root URL)" if path else "")
                    + "; for ZenML Pro, use the workspace URL, not the cloud dashboard's."
                ) from error
            if response.status in (400, 401, 403):
                raise AuthenticationFailed(
                    f"The server refused the API key. {api.decode_error(response)}. Check that `api-key` "
                    "holds a current, active service-account key created on this server or workspace."
                ) from error
            raise error
        token = api.decode_token(response.json())
        if not token:
            raise AuthenticationFailed(
                "Logging in with the API key gave no token. Check that `workspace-url` is the ZenML "
                "server's URL (for ZenML Pro, the workspace URL, not the cloud dashboard's)."
            )
        self._console.mask(token)
        self.token = token

    def _send(self, request: Request) -> Response:
        self._console.debug(f"{request.method} {request.path} {request.params or ''}")
        response = send(self.transport, request, self.token, self.timeout)
        self._console.debug(f"-> HTTP {response.status}")
        if 300 <= response.status < 400:
            raise ServerError(
                f"{self.base_url} redirected the request {request.purpose and 'while ' + request.purpose} "
                f"to {response.headers.get('location', 'another address')}. Set "
                "`workspace-url` to the server's final address; the action does not "
                "follow redirects, so the credentials never go to another host."
            )
        return response

    def response(self, request: Request) -> Response:
        """Send with the token; log in again once if the token was refused
        (it can expire during a long wait)."""
        if self.token is None and request.authenticated:
            self.login()
        response = self._send(request)
        if response.status == 401 and request.authenticated:
            self._console.debug("token refused; logging in again")
            self.login()
            response = self._send(request)
        return response

    def call(self, request: Request) -> Any:
        """The decoded JSON of a successful response; raises otherwise."""
        response = self.response(request)
        if not response.ok:
            raise translate(response, request)
        body = response.json()
        if body is None and response.body.strip() not in (b"", b"null"):
            raise ServerError(
                f"The server's answer {('while ' + request.purpose) if request.purpose else ''} "
                "was not JSON. A proxy or load balancer in front of the server may "
                "have answered instead; check `workspace-url`."
            )
        return body


def connect(inputs: Inputs, console: Console) -> ZenMLClient:
    """A client for `workspace-url` (nothing is sent yet). Time is bounded
    by the action's one deadline (`deadline.bounded`), not here."""
    transport = Transport(inputs.workspace_url, inputs.cafile, inputs.proxy)
    return ZenMLClient(transport, inputs.api_key, console, inputs.read_timeout)
