"""The pure rules, in-process: what a trigger's answer proves, how a run is
found again, how the trigger goes on after each kind of answer (a scripted
client and a fake clock stand in for the network), how often a wait polls,
and what a run's status concludes. Each table reads as the rule it checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from zenml_action import api, deadline, runs
from zenml_action.errors import (
    ConnectionFailed,
    ParameterError,
    RunFailed,
    ServerError,
    ServerRejected,
)
from zenml_action.github import Console
from zenml_action.http import Request, Response, RetryPolicy
from zenml_action.parameters import _schema_errors
from zenml_action.report import Report
from zenml_action.resolve import target_from_snapshot
from zenml_action.runs import next_interval
from zenml_action.trigger import RunKey, choose_key, classify, generated_run_name, trigger_once

pytestmark = pytest.mark.offline

BY_NAME = RunKey(run_name="training-2026_11_29-10_00_00_000001")
BY_TAG = RunKey(tag="gha-idem-42-1-abcd1234-0123456789ab")


def answer(status: int, body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None) -> Response:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return Response(status, headers or {}, data)


ZENML_BUSY = answer(429, {"detail": ["MaxConcurrentTasksError", "Maximum number of concurrent tasks reached."]})
ENVOY_503 = answer(503, raw=b"upstream connect error or disconnect/reset before headers")
CREATED = answer(200, {"id": "run-1", "name": "r", "body": {"status": "initializing"}})


@pytest.mark.parametrize(
    ("response", "earlier_ambiguous", "key", "expected"),
    [
        (CREATED, False, BY_NAME, "created"),
        (answer(200, {"no": "id"}), False, BY_NAME, "ambiguous"),  # a proxy's 200 page
        (answer(200, raw=b"<html>"), False, BY_TAG, "ambiguous"),
        (ZENML_BUSY, False, BY_TAG, "busy"),  # ZenML deleted the run it prepared
        (answer(429, raw=b"Too Many Requests"), False, BY_TAG, "ambiguous"),  # a proxy's
        (ENVOY_503, False, BY_TAG, "ambiguous"),
        (answer(503, {"detail": ["ServiceUnavailable", "x"]}), False, BY_TAG, "ambiguous"),
        (answer(502), False, BY_NAME, "ambiguous"),
        (answer(504), False, BY_NAME, "ambiguous"),
        (answer(500, {"detail": ["RuntimeError", "boom"]}), False, BY_NAME, "ambiguous"),
        (answer(408), False, BY_NAME, "ambiguous"),
        (answer(400, {"detail": ["ValueError", "bad"]}), False, BY_NAME, "refused"),
        (answer(401, {"detail": "Not authenticated"}), False, BY_NAME, "refused"),
        (answer(405, {"detail": "Method Not Allowed"}), False, BY_NAME, "refused"),
        (answer(422, ["ValueError", "bad"]), False, BY_NAME, "refused"),
        # The name is taken: by someone else at first, most likely by our
        # own earlier trigger after an ambiguous answer.
        (answer(409, {"detail": ["EntityExistsError", "exists"]}), False, BY_NAME, "refused"),
        (answer(409, {"detail": ["EntityExistsError", "exists"]}), True, BY_NAME, "ambiguous"),
        (answer(409, {"detail": ["EntityExistsError", "exists"]}), True, BY_TAG, "refused"),
    ],
)
def test_what_a_trigger_answer_proves(response: Response, earlier_ambiguous: bool, key: RunKey, expected: str) -> None:
    assert classify(response, earlier_ambiguous, key) == expected


@pytest.mark.parametrize(
    ("key", "configuration", "sent", "params"),
    [
        (BY_NAME, {"steps": {}}, {"steps": {}, "run_name": BY_NAME.run_name}, {"name": f"equals:{BY_NAME.run_name}"}),
        (BY_TAG, {"run_name": "nightly", "tags": ["a"]}, {"run_name": "nightly", "tags": ["a", BY_TAG.tag]}, {"tags": BY_TAG.tag}),
    ],
    ids=["by-name", "by-tag"],
)
def test_a_run_key_goes_into_the_run_and_finds_it_again(
    key: RunKey, configuration: dict[str, Any], sent: dict[str, Any], params: dict[str, str]
) -> None:
    assert key.apply(configuration) == sent
    assert configuration == {"steps": {}} or configuration["tags"] == ["a"]  # not changed in place
    lookup = key.lookup()
    assert lookup.path == "/api/v1/runs" and {k: lookup.params[k] for k in params} == params


@pytest.mark.parametrize(
    ("key", "run", "matches"),
    [
        (BY_NAME, {"name": BY_NAME.run_name}, True),
        (BY_NAME, {"name": BY_NAME.run_name + "-other"}, False),  # a filter the server ignored
        (BY_TAG, {"resources": {"tags": [{"name": "x"}, {"name": BY_TAG.tag}]}}, True),
        (BY_TAG, {"resources": {"tags": [{"name": "x"}]}}, False),
        (BY_TAG, {"resources": None}, False),
    ],
)
def test_a_found_run_is_checked_to_be_ours(key: RunKey, run: dict[str, Any], matches: bool) -> None:
    assert key.matches(run) is matches


def test_the_key_is_a_run_name_unless_the_user_named_the_run() -> None:
    now = datetime(2026, 11, 29, 10, 0, 0, 1, tzinfo=UTC)
    assert choose_key("", "training", ("42", "1", "train"), now) == RunKey(run_name="training-2026_11_29-10_00_00_000001")
    assert generated_run_name("training", now) == "training-2026_11_29-10_00_00_000001"
    tagged = choose_key("nightly-{date}", "training", ("42", "1", "train"), now)
    assert tagged.run_name == "" and tagged.tag.startswith("gha-idem-42-1-")
    assert choose_key("x", "p", ("42", "1", "train")) != choose_key("x", "p", ("42", "1", "train"))  # matrix jobs differ


# -- the trigger, scripted -----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class ScriptedClient:
    """Stands in for `ZenMLClient` at the HTTP seam: trigger answers and
    lookup results in the order given."""

    triggers: list[Response | Exception]
    lookups: list[list[dict[str, Any]]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    transport: Any = field(default_factory=lambda: type("T", (), {"policy": RetryPolicy()})())

    def response(self, request: Request) -> Response:
        self.sent.append("trigger")
        item = self.triggers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def call(self, request: Request) -> Any:
        self.sent.append("lookup")
        return {"items": self.lookups.pop(0) if self.lookups else []}


def trigger(client: ScriptedClient, key: RunKey, seconds: float = 600) -> tuple[dict[str, Any], FakeClock]:
    clock = FakeClock()
    # The action's deadline, in real time: the fake clock's sleeps take none.
    with deadline.bounded(seconds):
        run = trigger_once(
            client,  # type: ignore[arg-type]
            Request("POST", "/api/v1/pipeline_snapshots/s/runs", json={}),
            key,
            Console(stream=open("/dev/null", "w"), in_github=False),
            sleep=clock.sleep,
            clock=clock,
        )
    return run, clock


SENT_MAYBE = ConnectionFailed("broke after sending", maybe_sent=True)


@pytest.mark.parametrize(
    ("key", "triggers", "lookups", "sent"),
    [
        ("name", [CREATED], [], ["trigger"]),
        # ZenML was busy and did nothing: wait and send again, no lookup.
        ("tag", [ZENML_BUSY, ZENML_BUSY, CREATED], [], ["trigger"] * 3),
        # A proxy forwarded, then answered 503: the run is there.
        ("tag", [ENVOY_503], [[{"id": "run-1", "name": "x", "resources": {"tags": [{"name": BY_TAG.tag}]}}]], ["trigger", "lookup"]),
        # The run appears only on the third look (the server was slow).
        ("tag", [SENT_MAYBE], [[], [], [{"id": "run-1", "resources": {"tags": [{"name": BY_TAG.tag}]}}]], ["trigger", "lookup", "lookup", "lookup"]),
        # By name: a short look, send again, the server says the name is
        # taken, and the run is found.
        ("name", [SENT_MAYBE, answer(409, {"detail": ["EntityExistsError", "exists"]})],
         [[], [], [], [], [{"id": "run-1", "name": BY_NAME.run_name}]], ["trigger", "lookup", "lookup", "lookup", "trigger", "lookup", "lookup"]),
        # Nothing was created after all: send again.
        ("name", [answer(502), CREATED], [], ["trigger", "lookup", "lookup", "lookup", "trigger"]),
    ],
    ids=["created", "zenml-busy", "proxy-503-after-forwarding", "run-appears-late", "name-taken-after-retry", "502-not-forwarded"],
)
def test_the_trigger_starts_one_run(key: str, triggers: list[Any], lookups: list[Any], sent: list[str]) -> None:
    client = ScriptedClient(list(triggers), list(lookups))
    run, _ = trigger(client, BY_NAME if key == "name" else BY_TAG)
    assert run["id"] == "run-1"
    assert client.sent == sent


@pytest.mark.parametrize(
    ("triggers", "error"),
    [
        ([answer(400, {"detail": ["ValueError", "bad parameters"]})], ServerRejected),
        ([ConnectionFailed("refused", maybe_sent=False)], ConnectionFailed),
    ],
    ids=["refused", "never-delivered"],
)
def test_the_trigger_fails_at_once_when_nothing_can_have_happened(triggers: list[Any], error: type[Exception]) -> None:
    client = ScriptedClient(list(triggers))
    with pytest.raises(error):
        trigger(client, BY_TAG)
    assert client.sent == ["trigger"]


def test_a_server_busy_past_the_deadline_is_an_error_not_a_hang() -> None:
    client = ScriptedClient([ZENML_BUSY] * 100)
    with pytest.raises(ServerError, match="429"):
        trigger(client, BY_TAG, seconds=10)
    assert client.sent.count("lookup") == 0


def test_a_lookup_that_fails_after_an_ambiguous_trigger_stops_without_a_second_trigger() -> None:
    class FailingLookups(ScriptedClient):
        def call(self, request: Request) -> Any:
            raise ServerError("lookup failed")

    client = FailingLookups([SENT_MAYBE, CREATED])
    with pytest.raises(ServerError, match=BY_TAG.tag):
        trigger(client, BY_TAG)
    assert client.sent == ["trigger"]


# -- waiting and concluding -----------------------------------------------------


@pytest.mark.parametrize(
    ("first", "waited", "expected"),
    [
        (5, 0, 4.5),  # a poll starts 0.5 s early so the round trip fits
        (5, 60, 5.5),  # 10% of the time waited
        (5, 300, 30),  # at most 30 s: 2 requests a minute after 5 minutes
        (5, 3600, 30),
        (1, 0, 1),
        (60, 0, 60),  # the user asked for slower polling
    ],
)
def test_polling_backs_off_with_the_time_waited(first: float, waited: float, expected: float) -> None:
    assert next_interval(first, waited) == expected


def _quiet() -> Console:
    return Console(stream=open("/dev/null", "w"), in_github=False)


@pytest.mark.parametrize(
    ("status", "finished", "fail_on_run_failure", "conclusion", "error"),
    [
        ("completed", True, True, "success", None),
        ("cached", True, True, "success", None),
        ("failed", True, True, "failure", RunFailed),
        ("failed", True, False, "failure", None),
        ("stopped", True, True, "cancelled", RunFailed),
        ("cancelled", True, False, "cancelled", None),
        # Not waited for (`wait: false`); a run still going at `timeout` is
        # the deadline's (test_deadline.py).
        ("initializing", False, True, "triggered", None),
    ],
)
def test_the_conclusion_follows_the_status(
    status: str, finished: bool, fail_on_run_failure: bool, conclusion: str, error: type[Exception] | None
) -> None:
    report = Report(run_id="r", run_name="n", status=status)
    conclude: Callable[[], None] = lambda: runs.conclude(report, finished, fail_on_run_failure, _quiet())  # noqa: E731
    if error is None:
        conclude()
    else:
        with pytest.raises(error):
            conclude()
    assert report.conclusion == conclusion


# -- odd shapes from a server or proxy --------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"access_token": "eyJ.a.b"}, "eyJ.a.b"),
        ({"access_token": "eyJ.a\nb"}, ""),  # would break the header
        ({"access_token": "eyJ a b"}, ""),
        ({"access_token": 5}, ""),
        (["access_token"], ""),
    ],
)
def test_a_token_must_be_usable_in_a_header(body: Any, expected: str) -> None:
    assert api.decode_token(body) == expected


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        ({"items": [{"id": "a"}, {"name": "no id"}, "text", {"id": ""}, {"id": 5}]}, ["a"]),
        ({"items": "not a list"}, []),
        ([{"id": "a"}], []),
    ],
)
def test_only_entities_with_an_id_are_listed(body: Any, ids: list[str]) -> None:
    assert [item["id"] for item in api.items(body)] == ids


def test_a_pipeline_spec_of_the_wrong_shape_is_read_as_none() -> None:
    target = target_from_snapshot({"id": "s", "name": "n", "metadata": {"pipeline_spec": ["not", "a", "mapping"]}})
    assert target.pipeline_spec == {}


def test_a_schema_the_checker_cannot_read_still_checks_the_names() -> None:
    """A server schema with an unknown type: names are checked, types left
    to the server."""
    schema = {"type": "object", "properties": {"model_type": {"type": "enumish"}}, "additionalProperties": False}
    _schema_errors({"model_type": "svm"}, schema, "step `train_model`", "parameters")  # no error
    with pytest.raises(ParameterError, match="`model_typ` is not a parameter"):
        _schema_errors({"model_typ": "svm"}, schema, "step `train_model`", "parameters")
