"""The lifecycle shared by the small HTTP servers the tests and the benchmark run.

`LoopbackHTTPServer` is the base of `FaultProxy` (which the benchmark uses
to count requests), `Recorder` and `ForwardProxy`: a `ThreadingHTTPServer` on a free port
of 127.0.0.1 (optionally behind TLS), served by a daemon thread between
`__enter__` and `__exit__`. Handlers reach the object that owns the server as
`self.server.owner`; `QuietHandler` speaks HTTP/1.1 and logs nothing.

    class _Handler(QuietHandler):
        server: LoopbackServer[Echo]

        def do_GET(self) -> None:
            echo = self.server.owner
            ...

    class Echo(LoopbackHTTPServer):
        def __init__(self) -> None:
            super().__init__(_Handler, "echo")

    with Echo() as echo:
        urllib.request.urlopen(echo.url)
"""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Generic, Self, TypeVar

OwnerT = TypeVar("OwnerT")


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps connections alive and logs nothing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return


class LoopbackServer(ThreadingHTTPServer, Generic[OwnerT]):
    """The `ThreadingHTTPServer` behind a `LoopbackHTTPServer`, its `owner`."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: OwnerT,
        quiet_errors: bool = True,
    ) -> None:
        super().__init__(address, handler)
        self.owner = owner
        self.quiet_errors = quiet_errors

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        # Resets and clients that hang up are the point of most of these servers.
        if not self.quiet_errors:
            super().handle_error(request, client_address)


class LoopbackHTTPServer:
    """A threaded HTTP(S) server on `host` (127.0.0.1), on a free port, served
    by a daemon thread named `name` while in a `with` block (or between
    `start()` and `stop()`). With `quiet_errors=False`, a request that fails
    prints its traceback, as `socketserver` does by default."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        name: str,
        ssl_context: ssl.SSLContext | None = None,
        *,
        host: str = "127.0.0.1",
        quiet_errors: bool = True,
    ) -> None:
        self._server = LoopbackServer((host, 0), handler, self, quiet_errors)
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread = threading.Thread(
            # A short poll: stopping waits for it, and tests stop hundreds of these.
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self._server.server_address[0]!s}:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
