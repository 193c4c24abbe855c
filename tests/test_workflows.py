"""The workflows, action.yml and Dockerfile pass the linters GitHub users and
reviewers rely on, and keep the rules a reviewer checks by eye.

The linters are prebuilt binaries from PyPI (requirements-lint.txt) and run
offline. A missing binary skips its test with the reason; CI installs them
all, so there they run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.offline  # linters on files: no server, seconds

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
# Run by tests/test_image.py with act; linted like the others.
ACT_WORKFLOW = ROOT / "scripts" / "image" / "act-workflow.yml"
SHA_PIN = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}")
EXPRESSION = re.compile(r"\$\{\{")
# Writes a job may hold, and where: everything else is read-only.
ALLOWED_WRITES = {
    ("release.yml", "image"): {"packages"},
    ("release.yml", "release-commit"): {"contents"},
    ("example-retrain.yml", "validate"): {"pull-requests"},
}
# https://docs.github.com/en/actions/sharing-automations/creating-actions/metadata-syntax-for-github-actions#brandingcolor
BRANDING_COLORS = {"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}


def tool(name: str) -> str:
    """The linter from this venv (where requirements-lint.txt installs it) or PATH."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"`{name}` is not installed: pip install -r requirements-lint.txt")
    return found


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    # actionlint finds shellcheck on PATH; zizmor must not try the network.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("GH_TOKEN", None)
    env.pop("GITHUB_TOKEN", None)
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


def triggers(workflow: dict[Any, Any]) -> Any:
    """`on:` (YAML 1.1 reads the key as True)."""
    return workflow.get(True, workflow.get("on"))


def jobs(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(workflow["jobs"])


def steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in jobs(workflow).items() for step in job.get("steps", [])]


def workflow_ids() -> list[str]:
    return [path.name for path in WORKFLOWS]


# -- the linters ----------------------------------------------------------


def test_there_are_the_expected_workflows() -> None:
    assert {"ci.yml", "release.yml", "example-dispatch.yml", "example-retrain.yml", "example-approval.yml"} <= set(
        workflow_ids()
    )


def test_actionlint_with_shellcheck() -> None:
    actionlint = tool("actionlint")
    shellcheck = tool("shellcheck")
    result = run(actionlint, f"-shellcheck={shellcheck}", "-no-color")
    assert_clean(result)
    assert result.stdout == ""
    assert_clean(run(actionlint, f"-shellcheck={shellcheck}", "-no-color", str(ACT_WORKFLOW)))


def test_zizmor() -> None:
    result = run(tool("zizmor"), "--offline", "--strict-collection", "--no-progress", ".")
    assert_clean(result)
    assert_clean(run(tool("zizmor"), "--offline", "--no-progress", str(ACT_WORKFLOW)))
    # It audited what we think it audited.
    for path in [*WORKFLOWS, ROOT / "action.yml"]:
        assert path.relative_to(ROOT).as_posix() in result.stderr + result.stdout


def test_workflows_match_github_schema() -> None:
    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, [*WORKFLOWS, ACT_WORKFLOW])
    )
    assert_clean(result)


def test_action_yml_matches_github_schema() -> None:
    assert_clean(run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", "action.yml"))


def test_dependabot_config_matches_schema() -> None:
    assert_clean(run(tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"))


def test_hadolint() -> None:
    result = run(tool("hadolint"), "Dockerfile")
    assert_clean(result)
    assert result.stdout.strip() == ""


# -- what a reviewer checks by eye ---------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_ids())
def test_top_level_permissions_grant_nothing(path: Path) -> None:
    workflow = load(path)
    assert "permissions" in workflow, "set `permissions: {}` at the top; grant per job"
    assert workflow["permissions"] in ({}, {"contents": "read"}), workflow["permissions"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_ids())
def test_jobs_get_least_privilege(path: Path) -> None:
    for name, job in jobs(load(path)).items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"job {name}: state its permissions"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes <= ALLOWED_WRITES.get((path.name, name), set()), f"job {name} writes {writes}"
        assert job.get("timeout-minutes"), f"job {name}: set timeout-minutes"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_ids())
def test_remote_actions_are_pinned_to_a_commit(path: Path) -> None:
    text = path.read_text()
    for job_name, step in steps(load(path)):
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert not uses.startswith("docker://"), f"{job_name}: docker:// actions are not allowed"
        assert SHA_PIN.fullmatch(uses), f"{job_name}: `{uses}` is not pinned to a 40-hex commit SHA"
        # The version the SHA stands for is written next to it, for humans and Dependabot.
        assert re.search(re.escape(uses) + r" # v\d", text), f"`{uses}` has no `# vX.Y.Z` comment"


@pytest.mark.parametrize("path", [*WORKFLOWS, ACT_WORKFLOW], ids=[*workflow_ids(), ACT_WORKFLOW.name])
def test_no_expressions_inside_run_scripts(path: Path) -> None:
    """`${{ }}` in a script is pasted into the shell before it runs (script
    injection); values go through `env:` instead."""
    for job_name, step in steps(load(path)):
        script = step.get("run")
        if script is not None:
            assert not EXPRESSION.search(script), f"{job_name}: `${{{{` inside run: {script!r}"
        if "actions/github-script@" in str(step.get("uses", "")):
            assert not EXPRESSION.search(step["with"]["script"]), f"{job_name}: `${{{{` inside script"


@pytest.mark.parametrize("path", WORKFLOWS, ids=workflow_ids())
def test_checkouts_do_not_keep_the_token(path: Path) -> None:
    for job_name, step in steps(load(path)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step.get("with", {}).get("persist-credentials") is False, job_name


def test_pull_request_workflows_never_check_out_untrusted_code_with_secrets() -> None:
    for path in WORKFLOWS:
        assert "pull_request_target" not in triggers(load(path)), path.name


def test_examples_use_the_documented_inputs() -> None:
    dispatch = load(ROOT / ".github/workflows/example-dispatch.yml")
    inputs = triggers(dispatch)["workflow_dispatch"]["inputs"]
    assert inputs["model-type"]["type"] == "choice"
    assert inputs["model-type"]["options"] == ["random_forest", "gradient_boosting", "logistic_regression"]
    assert inputs["data-url"]["type"] == "string"
    assert inputs["wait"]["type"] == "boolean"
    for path in (ROOT / ".github/workflows/example-dispatch.yml", ROOT / ".github/workflows/example-retrain.yml", ROOT / ".github/workflows/example-promote.yml"):
        for _, step in steps(load(path)):
            if step.get("uses") == "./":
                assert step["with"]["workspace-url"] == "${{ vars.ZENML_URL }}"
                assert step["with"]["api-key"] == "${{ secrets.ZENML_API_KEY }}"
    retrain = load(ROOT / ".github/workflows/example-retrain.yml")
    assert triggers(retrain)["push"] == {"branches": ["main"], "paths": ["pipelines/**"]}
    snapshot = [s for _, s in steps(retrain) if "create-snapshot" in s.get("with", {})]
    assert snapshot and snapshot[0]["with"]["pipeline"] == "pipelines/training.py:training_pipeline"


def test_the_approval_example_answers_only_in_the_protected_environment() -> None:
    """docs/approval.md: `train` ends at the question, `approve` waits for a
    reviewer of `production` and answers the question the reviewer saw."""
    workflow = jobs(load(ROOT / ".github/workflows/example-approval.yml"))
    train, approve = workflow["train"], workflow["approve"]
    [asking] = [step for step in train["steps"] if step.get("uses") == "./"]
    assert asking["with"]["template"] and "run-id" not in asking["with"]
    assert train["outputs"] == {
        name: f"${{{{ steps.{asking['id']}.outputs.{name} }}}}"
        for name in ("conclusion", "run-id", "run-url", "wait-condition-id")
    }
    assert "environment" not in train
    assert approve["needs"] == "train"
    assert approve["if"] == "needs.train.outputs.conclusion == 'waiting-for-input'"
    assert approve["environment"]["name"] == "production"
    [answering] = [step for step in approve["steps"] if step.get("uses") == "./"]
    assert answering["with"] == {
        "workspace-url": "${{ vars.ZENML_URL }}",
        "api-key": "${{ secrets.ZENML_API_KEY }}",
        "run-id": "${{ needs.train.outputs.run-id }}",
        "wait-condition": "${{ needs.train.outputs.wait-condition-id }}",
        "resolve": "continue",
        "answer": True,
        "timeout": "1h",
    }


# -- action.yml and the release -----------------------------------------


def test_action_builds_from_the_dockerfile_on_branches() -> None:
    """Only the release commit points at the prebuilt image (release.yml)."""
    runs = load(ROOT / "action.yml")["runs"]
    assert runs == {"using": "docker", "image": "Dockerfile"}


def test_action_metadata_fits_the_marketplace() -> None:
    action = load(ROOT / "action.yml")
    assert action["name"] and len(action["name"]) <= 100
    description = " ".join(str(action["description"]).split())
    assert len(description) < 125, f"{len(description)} characters: {description}"
    assert action["branding"]["color"] in BRANDING_COLORS
    assert re.fullmatch(r"[a-z0-9-]+", action["branding"]["icon"])
    for name, spec in {**action["inputs"], **action["outputs"]}.items():
        assert spec.get("description"), f"{name} has no description"


def pin_action_image(tmp_path: Path, image: str, source: Path | None = None) -> subprocess.CompletedProcess[str]:
    target = tmp_path / "action.yml"
    if source is not None:
        shutil.copy(source, target)
    return subprocess.run(
        [sys.executable, str(ROOT / ".github/scripts/pin_action_image.py"), image, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_release_rewrites_only_the_image_line(tmp_path: Path) -> None:
    image = "ghcr.io/acme/zenml-action:v1.2.3"
    result = pin_action_image(tmp_path, image, ROOT / "action.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    before = (ROOT / "action.yml").read_text().splitlines()
    after = (tmp_path / "action.yml").read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("  image: Dockerfile", f"  image: docker://{image}")]
    assert load(tmp_path / "action.yml")["runs"]["image"] == f"docker://{image}"
    assert_clean(run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(tmp_path / "action.yml")))


@pytest.mark.parametrize(
    "image",
    ["ghcr.io/Acme/Action:v1.2.3", "ghcr.io/acme/action:latest", "ghcr.io/acme/action:v1", "ghcr.io/acme/action:v1.2.3\nx: y"],
)
def test_release_refuses_odd_image_names(tmp_path: Path, image: str) -> None:
    result = pin_action_image(tmp_path, image, ROOT / "action.yml")
    assert result.returncode == 1
    assert (tmp_path / "action.yml").read_text() == (ROOT / "action.yml").read_text()


def test_release_refuses_to_pin_twice(tmp_path: Path) -> None:
    assert pin_action_image(tmp_path, "ghcr.io/acme/action:v1.2.3", ROOT / "action.yml").returncode == 0
    again = pin_action_image(tmp_path, "ghcr.io/acme/action:v1.2.4")
    assert again.returncode == 1 and "already pinned" in again.stdout


def test_release_workflow_publishes_what_the_tags_name() -> None:
    release = load(ROOT / ".github/workflows/release.yml")
    assert triggers(release) == {"push": {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}}
    by_name = {step.get("uses", "").split("@")[0]: step for _, step in steps(release)}
    build = by_name["docker/build-push-action"]["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["push"] is True
    tags = by_name["docker/metadata-action"]["with"]["tags"].split()
    assert tags == ["type=semver,pattern=v{{version}}", "type=semver,pattern=v{{major}}", "type=sha,format=long"]
    script = "\n".join(step.get("run", "") for _, step in steps(release))
    assert "pin_action_image.py" in script
    assert 'git tag --force "${VERSION%%.*}"' in script  # moves the major tag
    assert jobs(release)["release-commit"]["needs"] == "image"
    assert jobs(release)["smoke-test"]["needs"] == "release-commit"
