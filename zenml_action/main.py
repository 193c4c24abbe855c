"""The action's one entry and one exit path: whatever happens, this is where
the `::error::` annotation, the step outputs and the job summary are written,
and where the exit code is decided."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from zenml_action import deadline
from zenml_action.errors import ActionError
from zenml_action.github import Console, write_outputs
from zenml_action.inputs import read_inputs
from zenml_action.report import Report, summary_markdown


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    console = Console(
        debug=environ.get("RUNNER_DEBUG") == "1" or "--debug" in argv,
        in_github=environ.get("GITHUB_ACTIONS") == "true",
    )
    # The key is masked before any line is printed, even one that fails validation.
    keys = [environ.get(k, "") for k in ("INPUT_API-KEY", "INPUT_API_KEY", "ZENML_STORE_API_KEY")]
    keys += [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--api-key"]
    keys += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--api-key=")]
    for key in keys:
        console.mask(key)
        console.mask(key.strip())
    report = Report()
    with deadline.bounded():
        exit_code = _run(argv, environ, console, report)
        # Signals that come now are noted, not raised: the outputs and the
        # summary are written whole, then the action ends at once.
        with deadline.deferred():
            # Redaction comes last, on everything written: a key in a parameter
            # or a run name must not reach an output or the summary either.
            outputs = {name: console.redact(value) for name, value in report.outputs().items()}
            from zenml_action.progress import steps_summary  # after the run: off the trigger's path

            try:
                write_outputs(outputs, environ.get("GITHUB_OUTPUT", ""), console)
                if summary_file := environ.get("GITHUB_STEP_SUMMARY"):
                    with open(summary_file, "a", encoding="utf-8") as handle:
                        handle.write(console.redact(summary_markdown(report) + steps_summary(report.steps)))
            except OSError as exc:
                console.error(
                    "Could not write the step's outputs or summary "
                    f"({type(exc).__name__}: {exc.strerror or exc}). "
                    "GITHUB_OUTPUT and GITHUB_STEP_SUMMARY must name files in an existing directory; "
                    "outside GitHub, unset them.",
                    title="Cannot write outputs",
                )
                exit_code = 1
    return exit_code


def _run(argv: Sequence[str], environ: Mapping[str, str], console: Console, report: Report) -> int:
    """Run the mode the inputs ask for; the exit code, with the error (if
    any) written as the one `::error::` annotation. The modes stop what
    they started when interrupted (`runs.interrupted`), then re-raise."""
    summary_error = ""
    try:
        inputs = read_inputs(environ, argv)
        console.debug_enabled = inputs.debug
        deadline.start(inputs.timeout)
        if inputs.code_mode:
            from zenml_action import code_mode

            code_mode.run(inputs, console, report)
        else:
            from zenml_action import server_side

            server_side.run(inputs, console, report)
    except deadline.Interrupted as stop:
        report.conclusion = stop.conclusion
        message, title = str(stop), stop.title
    except ActionError as exc:
        message, title = str(exc), exc.title
    except Exception as exc:  # a bug: say so without a traceback, unless debugging
        if console.debug_enabled:
            import traceback

            console.debug(traceback.format_exc())
        message = (
            f"The action failed unexpectedly ({type(exc).__name__}). This is a bug in the "
            "action: please report it with the step's log (re-run with debug logging for details)."
        )
        title, summary_error = "Internal error", f"internal error: {type(exc).__name__}"
    else:
        return 0
    report.error = summary_error or console.redact(message)
    if report.run_id and not report.conclusion:
        report.conclusion = "failure"
    console.error(message, title=title)
    return 1
