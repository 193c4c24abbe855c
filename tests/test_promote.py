"""`promote-to`: the run's model version moves to a stage only after the run
completed and passed its gate; the outputs, the report and the `result`
say what the server holds afterwards (read back), or why nothing moved.

The rules in-process by table; what the server decides against the real
server: the models and versions are set up over REST (`support.models`),
the runs completed as their orchestrator would (`support.orchestrator`)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import Deployment
from support.action import ROOT, ActionResult, ActionRunner
from support.fault_proxy import RESET_AFTER, STATUS, FaultProxy, Rule
from support.github_env import ACTOR, github_env
from support.models import new_model, new_version, stages, version_metadata
from support.orchestrator import complete_run, fail_run, find_run, log_run_metadata

from zenml_action import promotion as pm
from zenml_action import provenance
from zenml_action.errors import InputError
from zenml_action.inputs import read_inputs
from zenml_action.promote import PROMOTED_FROM_RUN_KEY, PROMOTED_TO_KEY, why_not
from zenml_action.promotion import Promotion
from zenml_action.report import Report, summary_markdown

RESULT_SCHEMA = json.loads((ROOT / "schemas" / "result-v1.json").read_text())
RUN_ID = str(uuid.UUID(int=42))
SHA = "a" * 40
BASE = {"INPUT_WORKSPACE-URL": "http://127.0.0.1:8080", "INPUT_API-KEY": "ZENKEY_" + "a" * 40}

# -- the inputs ------------------------------------------------------------------


@pytest.mark.offline
@pytest.mark.parametrize(
    ("extra", "name", "problem"),
    [
        ({"INPUT_RUN-ID": RUN_ID, "INPUT_PROMOTE-TO": "prod"}, "promote-to", "is not a stage"),
        ({"INPUT_RUN-ID": RUN_ID, "INPUT_PROMOTE-TO": "latest"}, "promote-to", "is not a stage"),
        ({"INPUT_TEMPLATE": "t", "INPUT_WAIT": "false", "INPUT_PROMOTE-TO": "production"}, "promote-to", "`wait` is false"),
        ({"INPUT_RUN-FOR-COMMIT": "abc123"}, "run-for-commit", "is not a full commit SHA"),
        ({"INPUT_RUN-FOR-COMMIT": SHA, "INPUT_RUN-ID": RUN_ID}, "run-for-commit", "cannot be combined with `run-id`"),
        ({"INPUT_RUN-FOR-COMMIT": SHA, "INPUT_TEMPLATE": "t"}, "run-for-commit", "cannot be combined with `template`"),
        ({"INPUT_RUN-FOR-COMMIT": SHA, "INPUT_PIPELINE": "trainer"}, "run-for-commit", "cannot be combined with `pipeline`"),
        ({"INPUT_RUN-FOR-COMMIT": SHA, "INPUT_PARAMETERS": "a: 1"}, "run-for-commit", "cannot be combined with `parameters`"),
    ],
)
def test_promotion_input_mistakes_name_the_input(tmp_path: Path, extra: dict[str, str], name: str, problem: str) -> None:
    with pytest.raises(InputError) as raised:
        read_inputs({**BASE, "GITHUB_WORKSPACE": str(tmp_path), **extra}, [])
    assert raised.value.input_name == name and problem in str(raised.value)


@pytest.mark.offline
def test_code_mode_on_a_local_store_cannot_promote(tmp_path: Path) -> None:
    environ = {"GITHUB_WORKSPACE": str(tmp_path), "INPUT_PIPELINE": "p.py:p", "INPUT_PROMOTE-TO": "staging"}
    with pytest.raises(InputError, match="needs a ZenML server"):
        read_inputs(environ, [])


@pytest.mark.offline
def test_a_commit_alone_follows_its_run(tmp_path: Path) -> None:
    inputs = read_inputs({**BASE, "GITHUB_WORKSPACE": str(tmp_path), "INPUT_RUN-FOR-COMMIT": SHA.upper(), "INPUT_PROMOTE-TO": "Production"}, [])
    assert (inputs.run_for_commit, inputs.promote_to, inputs.attached) == (SHA, "production", True)


# -- when a run earns it ----------------------------------------------------------


@pytest.mark.offline
@pytest.mark.parametrize(
    ("conclusion", "status", "gate_error", "reason"),
    [
        ("success", "completed", "", ""),
        ("success", "cached", "", ""),
        ("success", "completed", "f1 0.8 < 0.9", "the gate failed"),
        ("failure", "failed", "", "the run did not complete (it is `failed`"),
        ("timeout", "running", "", "the run did not complete (it is `running`"),
        ("cancelled", "stopped", "", "the run did not complete (it is `stopped`"),
        ("waiting-for-input", "paused", "", "the run did not complete (it is `paused`"),
        ("triggered", "running", "", "the run did not complete"),
    ],
)
def test_only_a_completed_run_that_passed_its_gate_is_promoted(conclusion: str, status: str, gate_error: str, reason: str) -> None:
    said = why_not(Report(run_id="r", status=status, conclusion=conclusion), gate_error)
    assert said.startswith(reason) and bool(said) == bool(reason)


def version_body(name: Any, updated: str, id_: str = "v") -> dict[str, Any]:
    return {"id": id_, "name": name, "body": {"number": 3, "stage": "production", "updated": updated,
                                              "model": {"id": "m", "name": "clf"}, "project_id": "p"}}


@pytest.mark.offline
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (version_body("3", "2025-01-01T00:00:00"), ("v", "clf", "3", "production")),
        (version_body(None, "2025-01-01T00:00:00"), ("v", "clf", "3", "production")),  # unnamed: its number
        ({"id": "v", "body": "nonsense"}, ("v", "", "?", "")),
        ({"id": 7}, None),
        (["not", "a", "version"], None),
    ],
)
def test_model_versions_are_read_as_the_server_sent_them(body: Any, expected: tuple[str, ...] | None) -> None:
    version = pm.decode_version(body)
    assert (version and (version.id, version.model, version.name, version.stage)) == expected or version is expected


@pytest.mark.offline
def test_of_two_holders_the_one_changed_last_stays_and_the_id_breaks_a_tie() -> None:
    first, later = pm.decode_version(version_body("1", "2025-01-01T00:00:01", "b")), pm.decode_version(version_body("2", "2025-01-01T00:00:02", "a"))
    tie = pm.decode_version(version_body("3", "2025-01-01T00:00:02", "c"))
    assert first and later and tie
    assert max([first, later], key=pm.holder_order) == later
    assert max([later, tie], key=pm.holder_order) == max([tie, later], key=pm.holder_order) == tie


@pytest.mark.offline
@pytest.mark.parametrize(
    ("snapshot", "expected"),
    [
        ({"metadata": {"pipeline_configuration": {"model": {"name": "clf"}}}}, True),
        ({"metadata": {"pipeline_configuration": {}, "step_configurations": {"train": {"config": {"model": {"name": "clf"}}}}}}, True),
        ({"metadata": {"pipeline_configuration": {"name": "p"}, "step_configurations": {"train": {"config": {}}}}}, False),
        ({"metadata": {}}, None),  # nothing to tell by: checked after the run
    ],
)
def test_a_snapshot_tells_whether_its_runs_produce_a_model_version(snapshot: dict[str, Any], expected: bool | None) -> None:
    assert pm.model_configured(snapshot) is expected


@pytest.mark.offline
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"pull_request": {"head": {"sha": SHA}}}, SHA),
        ({"pull_request": {"head": {"sha": "abc"}}}, ""),
        ({"pull_request": "nonsense"}, ""),
        (["not", "an", "event"], ""),
        (None, ""),  # no file
    ],
)
def test_a_pull_requests_head_commit_is_read_from_its_event(tmp_path: Path, payload: Any, expected: str) -> None:
    event = tmp_path / "event.json"
    if payload is not None:
        event.write_text(json.dumps(payload))
    environ = {**github_env("acme/x", "refs/pull/1/merge", "f"), "GITHUB_EVENT_PATH": str(event)}
    assert provenance.github_context(environ).get("github.head_sha", "") == expected


@pytest.mark.offline
def test_a_hostile_model_name_is_shown_as_text_in_the_summary() -> None:
    report = Report(run_id="r", conclusion="success", target="t")
    report.promotion = Promotion("production", True, model="[x](https://evil.example)|<b>", version="3", note="moved")
    summary = summary_markdown(report)
    assert "](https://evil.example)" not in summary and "<b>" not in summary
    assert report.outputs()["promoted"] == "true" and report.outputs()["model-version"] == "3"


# -- against the server ---------------------------------------------------------


def completed_run(zenml: Deployment, metrics: dict[str, float] | None = None) -> dict[str, Any]:
    """A run someone started and its orchestrator completed, with metrics."""
    run = dict(zenml.server.admin(
        "POST", f"/api/v1/pipeline_snapshots/{zenml.snapshots['trainer']}/runs",
        json={"run_configuration": {"run_name": f"promote-{uuid.uuid4().hex[:8]}"}},
    ))
    if metrics:
        log_run_metadata(zenml.server, run, metrics)
    complete_run(zenml.server, run)
    return run


def promote(action: ActionRunner, run: dict[str, Any], stage: str = "production", **inputs: str) -> ActionResult:
    env = github_env("acme/promote", "refs/heads/main")
    return action.run({"run-id": run["id"], "promote-to": stage, **inputs}, extra_env=env)


def result_of(result: ActionResult) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads(result.outputs["result"])
    jsonschema.validate(facts, RESULT_SCHEMA)
    return facts


def test_a_passing_run_is_promoted_the_holder_archived_and_the_promotion_recorded(action: ActionRunner, zenml: Deployment) -> None:
    model = new_model(zenml.server)
    old = new_version(zenml.server, model, stage="production")
    run = completed_run(zenml, {"accuracy": 0.95})
    version = new_version(zenml.server, model, run)

    result = promote(action, run, gate="accuracy >= 0.9")

    assert result.returncode == 0, result.stdout
    assert result.outputs["promoted"] == "true"
    assert (result.outputs["model-version"], result.outputs["model-version-id"]) == (version["name"], version["id"])
    assert result.outputs["previous-model-version"] == old["name"]
    assert stages(zenml.server, model) == {old["name"]: "archived", version["name"]: "production"}
    recorded = version_metadata(zenml.server, version["id"])
    assert recorded[PROMOTED_TO_KEY] == "production" and recorded[PROMOTED_FROM_RUN_KEY] == run["id"]
    assert (recorded["github.repository"], recorded["github.actor"]) == ("acme/promote", ACTOR)
    assert recorded["github.workflow_run_url"] == "https://github.com/acme/promote/actions/runs/4242"
    promotion = result_of(result)["promotion"]
    assert (promotion["promoted"], promotion["previous_version"], promotion["model"]) == (True, old["name"], model["name"])
    assert "Promotion" in result.outputs["report"] and f"version {version['name']}" in result.outputs["report"]

    again = promote(action, run)  # idempotent: nothing to do, said so

    assert again.returncode == 0, again.stdout
    assert (again.outputs["promoted"], again.outputs["previous-model-version"]) == ("true", "")
    assert "already in `production`: nothing to do" in again.stdout
    assert stages(zenml.server, model) == {old["name"]: "archived", version["name"]: "production"}


@pytest.mark.parametrize(
    ("end", "inputs", "error"),
    [
        ("gate-failed", {"gate": "accuracy >= 0.99"}, "title=Quality gate failed"),
        ("run-failed", {}, "title=Pipeline run failed"),
        ("timed-out", {"timeout": "3s"}, "title=Timed out"),
    ],
)
def test_nothing_is_promoted_when_the_run_did_not_earn_it(
    action: ActionRunner, zenml: Deployment, end: str, inputs: dict[str, str], error: str
) -> None:
    model = new_model(zenml.server)
    holder = new_version(zenml.server, model, stage="production")
    run = dict(zenml.server.admin(
        "POST", f"/api/v1/pipeline_snapshots/{zenml.snapshots['trainer']}/runs",
        json={"run_configuration": {"run_name": f"promote-{uuid.uuid4().hex[:8]}"}},
    ))
    log_run_metadata(zenml.server, run, {"accuracy": 0.95})
    if end == "gate-failed":
        complete_run(zenml.server, run)
    elif end == "run-failed":
        fail_run(zenml.server, run)
    version = new_version(zenml.server, model, run)

    result = promote(action, run, **inputs)

    assert result.returncode == 1 and len(result.errors) == 1 and error in result.errors[0], result.stdout
    assert result.outputs["promoted"] == "false"
    assert stages(zenml.server, model) == {holder["name"]: "production", version["name"]: ""}
    assert "not promoted" in result.summary


def test_a_run_without_a_model_version_names_the_input_and_is_still_reported(action: ActionRunner, zenml: Deployment) -> None:
    run = completed_run(zenml)
    result = promote(action, run)

    assert result.returncode == 1 and len(result.errors) == 1, result.stdout
    assert "Input `promote-to`" in result.errors[0] and "produced no model version" in result.errors[0]
    assert (result.outputs["run-id"], result.outputs["conclusion"], result.outputs["promoted"]) == (run["id"], "success", "false")


def test_a_dry_run_says_which_version_would_move_and_moves_nothing(action: ActionRunner, zenml: Deployment) -> None:
    model = new_model(zenml.server)
    holder = new_version(zenml.server, model, stage="staging")
    run = completed_run(zenml)
    version = new_version(zenml.server, model, run)

    result = promote(action, run, "staging", **{"dry-run": "true"})

    assert result.returncode == 0, result.stdout
    assert f"would move `{model['name']}` version {version['name']} from `no stage` to `staging`" in result.stdout
    assert result.outputs["promoted"] == "false" and result.outputs["conclusion"] == "dry-run"
    assert stages(zenml.server, model) == {holder["name"]: "staging", version["name"]: ""}


def test_the_run_of_a_merged_commit_is_found_and_promoted(action: ActionRunner, zenml: Deployment, tmp_path: Path) -> None:
    """The pull request's run was made from a merge commit (GITHUB_SHA); the
    merged pull request names its head commit."""
    sha, merge_commit = (uuid.uuid4().hex + uuid.uuid4().hex[:8] for _ in range(2))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": sha}}}))
    pull_request = {
        **github_env("acme/merge", "refs/pull/9/merge", "feature"), "GITHUB_SHA": merge_commit, "GITHUB_EVENT_PATH": str(event),
    }
    started = action.start({"template": "trainer-prod", "run-name": f"pr-{sha[:8]}", "timeout": "60s"}, extra_env=pull_request)
    run = find_run(zenml.server, f"pr-{sha[:8]}")
    complete_run(zenml.server, run)
    assert started.finish(timeout=90).returncode == 0
    model = new_model(zenml.server)
    version = new_version(zenml.server, model, run)

    merged = {**github_env("acme/merge", "refs/heads/main"), "GITHUB_SHA": "f" * 40}
    result = action.run({"run-for-commit": sha, "promote-to": "production"}, extra_env=merged)
    elsewhere = action.run({"run-for-commit": sha, "promote-to": "production"}, extra_env=github_env("acme/other", "refs/heads/main"))

    assert result.returncode == 0, result.stdout
    assert (result.outputs["run-id"], result.outputs["promoted"]) == (run["id"], "true")
    assert stages(zenml.server, model) == {version["name"]: "production"}
    # Another repository's commit is not this one's.
    assert elsewhere.returncode == 1 and "Input `run-for-commit`: no completed run" in elsewhere.errors[0], elsewhere.stdout


def test_two_promotions_at_once_leave_one_version_in_production_and_each_tells_the_truth(
    action: ActionRunner, zenml: Deployment
) -> None:
    model = new_model(zenml.server)
    holder = new_version(zenml.server, model, stage="production")
    runs = [completed_run(zenml) for _ in range(2)]
    versions = [new_version(zenml.server, model, run) for run in runs]
    env = github_env("acme/race", "refs/heads/main")

    running = [action.start({"run-id": run["id"], "promote-to": "production"}, extra_env=env) for run in runs]
    results = [r.finish(timeout=120) for r in running]

    held = stages(zenml.server, model)
    assert held[holder["name"]] == "archived"
    in_production = [v for v in versions if held[v["name"]] == "production"]
    assert len(in_production) == 1 and list(held.values()).count("production") == 1, held
    winner = versions.index(in_production[0])
    won, lost, loser = results[winner], results[1 - winner], versions[1 - winner]
    assert (won.returncode, won.outputs["promoted"]) == (0, "true"), won.stdout
    assert held[loser["name"]] == "archived"
    if lost.outputs["promoted"] == "false":  # it saw the other promotion come after its own
        assert lost.returncode == 1 and "title=Model promotion failed" in lost.errors[0], lost.stdout
        assert f"version {in_production[0]['name']}" in lost.errors[0]
        assert won.outputs["previous-model-version"] in (holder["name"], loser["name"])
    else:  # it finished first: the later promotion archived its version, and says so
        assert lost.returncode == 0, lost.stdout
        assert won.outputs["previous-model-version"] == loser["name"]


@pytest.mark.parametrize(
    ("rule", "promoted", "said"),
    [
        # The server made the change; the answer was lost: sent again (safe), then read back.
        (Rule("PUT", r"/model_versions/", RESET_AFTER), "true", ""),
        (Rule("PUT", r"/model_versions/", STATUS, status=500, forward=True), "true", "but the server holds it there"),
        # The server never saw it: read back, nothing moved, said so.
        (Rule("PUT", r"/model_versions/", STATUS, status=500), "false", "`production` holds"),
        (Rule("PUT", r"/model_versions/", STATUS, status=403, body=json.dumps(
            {"detail": ["IllegalOperationError", "Not allowed to promote model."]}).encode()), "false", "`promote` and `update` permissions"),
    ],
    ids=["reset-after-sending", "500-after-the-change", "500-before-the-change", "permission-denied"],
)
def test_a_promotion_that_fails_part_way_reports_what_the_server_holds(
    zenml: Deployment, workspace: Path, rule: Rule, promoted: str, said: str
) -> None:
    model = new_model(zenml.server)
    holder = new_version(zenml.server, model, stage="production")
    run = completed_run(zenml)
    version = new_version(zenml.server, model, run)
    with FaultProxy(zenml.url) as proxy:
        proxy.add(rule)
        runner = ActionRunner(workspace, base_inputs={"workspace-url": proxy.url, "api-key": zenml.api_key})
        result = runner.run({"run-id": run["id"], "promote-to": "production"})

    held = stages(zenml.server, model)
    assert result.outputs["promoted"] == promoted, result.stdout
    assert held[version["name"]] == ("production" if promoted == "true" else ""), held
    assert held[holder["name"]] == ("archived" if promoted == "true" else "production")
    assert result.outputs["conclusion"] == "success"  # the run's own outcome
    if promoted == "true":
        assert result.returncode == 0 and said in result.stdout, result.stdout
    else:
        assert result.returncode == 1 and len(result.errors) == 1 and said in result.errors[0], result.stdout


@pytest.mark.offline
def test_the_example_promotes_a_merged_pull_requests_run_behind_the_production_environment() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / ".github/workflows/example-promote.yml").read_text())
    assert workflow[True]["pull_request"]["types"] == ["closed"]  # YAML 1.1 reads `on` as True
    job = workflow["jobs"]["promote"]
    assert job["environment"] == "production" and "merged == true" in job["if"]
    [step] = [s for s in job["steps"] if s.get("uses") == "./"]
    assert step["with"]["run-for-commit"] == "${{ github.event.pull_request.head.sha }}"
    assert step["with"]["promote-to"] == "production"
    assert step["with"]["compare-to"].startswith("model:") and "baseline" in step["with"]["gate"]


def test_a_snapshot_without_a_model_is_refused_before_the_trigger(action: ActionRunner, zenml: Deployment) -> None:
    before = zenml.server.admin("GET", "/api/v1/runs", params={"size": "1"})["total"]
    result = action.run({"template": "trainer-prod", "promote-to": "production"})

    assert result.returncode == 1 and len(result.errors) == 1, result.stdout
    assert "Input `promote-to`" in result.errors[0] and "has no model in its configuration" in result.errors[0]
    assert zenml.server.admin("GET", "/api/v1/runs", params={"size": "1"})["total"] == before


def test_a_version_is_retired_to_archived_beside_the_others_there(action: ActionRunner, zenml: Deployment) -> None:
    model = new_model(zenml.server)
    retired = new_version(zenml.server, model, stage="archived")
    run = completed_run(zenml)
    version = new_version(zenml.server, model, run, stage="production")

    result = promote(action, run, "archived")

    assert result.returncode == 0, result.stdout
    assert (result.outputs["promoted"], result.outputs["previous-model-version"]) == ("true", "")
    assert stages(zenml.server, model) == {retired["name"]: "archived", version["name"]: "archived"}
