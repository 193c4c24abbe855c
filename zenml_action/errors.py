"""Every failure a user can act on, each with what failed, why and the fix:
`main()` turns an `ActionError` into one `::error title=...::` annotation and
exit code 1; anything else is a bug and is reported as such."""

from __future__ import annotations

from typing import ClassVar


class ActionError(Exception):
    """Base class: `title` becomes the annotation's title, the message its body."""

    title: ClassVar[str] = "ZenML action failed"


class InputError(ActionError):
    title = "Invalid input"

    def __init__(self, name: str, problem: str, fix: str) -> None:
        self.input_name = name
        super().__init__(f"Input `{name}`: {problem} {fix}".strip())


class ParameterError(ActionError):
    title = "Invalid pipeline parameters"


class ConnectionFailed(ActionError):
    title = "Cannot reach the ZenML server"

    def __init__(self, message: str, maybe_sent: bool = False) -> None:
        # The request may have reached the server (reset, read timeout): a POST may have acted.
        self.maybe_sent = maybe_sent
        super().__init__(message)


class ProxyFailed(ConnectionFailed):
    title = "Proxy problem"


class AuthenticationFailed(ActionError):
    title = "ZenML authentication failed"


class PermissionDenied(ActionError):
    title = "ZenML permission denied"


class NotFound(ActionError):
    title = "Not found on the ZenML server"


class Ambiguous(ActionError):
    title = "Ambiguous template"


class NotRunnable(ActionError):
    title = "Snapshot cannot run on the server"


class ServerCannotRun(ActionError):
    """The server has no workload manager: HTTP 405 on the run endpoint."""

    title = "This ZenML server cannot run snapshots"


class ServerRejected(ActionError):
    title = "The ZenML server refused the request"


class ServerError(ActionError):
    title = "ZenML server error"


class RunFailed(ActionError):
    title = "Pipeline run failed"


class GateFailed(ActionError):
    title = "Quality gate failed"


class UnsupportedServer(ActionError):
    title = "Unsupported ZenML server version"


class PromotionFailed(ActionError):
    """`promote-to`: the model version could not be moved to the stage, or
    whether it was cannot be told; the run's own outcome is in `conclusion`."""

    title = "Model promotion failed"
