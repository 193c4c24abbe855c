"""Pure rules of server versions, in-process: reading version strings, what
each version offers, and checking parameters with what a version states
(the shapes are those each version's server answers, trimmed)."""

from __future__ import annotations

from typing import Any

import pytest

from zenml_action.code_env import client_zenml_version
from zenml_action.errors import ParameterError, UnsupportedServer
from zenml_action.parameters import check_and_translate, unchecked
from zenml_action.resolve import Target, target_from_run_template, target_from_snapshot
from zenml_action.versions import parse_release, server_version

pytestmark = pytest.mark.offline


@pytest.mark.parametrize(
    ("raw", "release", "snapshots", "notice"),
    [
        ("0.85.0", (0, 85, 0), False, ""),
        ("0.90.0", (0, 90, 0), True, ""),
        ("0.93.1.dev20260129", (0, 93, 1), True, ""),
        ("0.98.0rc1", (0, 98, 0), True, ""),
        ("0.91.2+pro.7", (0, 91, 2), True, ""),
        ("v0.97", (0, 97, 0), True, ""),
        # Newer than the newest tested: used as 0.98, with one notice.
        ("0.99.1", (0, 98, 0), True, "newer than the newest version this action is tested with (0.98)"),
        ("1.2.0", (0, 98, 0), True, "it is used as 0.98"),
        # Unreadable: the newest tested, said so.
        ("pro-build", (0, 98, 0), True, "`pro-build` could not be read"),
        ("", (0, 98, 0), True, "is not stated"),
    ],
)
def test_what_each_version_offers(raw: str, release: tuple[int, int, int], snapshots: bool, notice: str) -> None:
    version, said = server_version({"version": raw})

    assert version.release == release
    assert version.has_snapshots == snapshots
    assert (notice in said) if notice else said == ""


@pytest.mark.parametrize("raw", ["0.84.2", "0.70.0", "0.9.1"])
def test_older_than_the_minimum_is_one_clear_error(raw: str) -> None:
    with pytest.raises(UnsupportedServer, match=rf"runs ZenML {raw}; this action needs ZenML 0\.85\.0 or newer"):
        server_version({"version": raw})


@pytest.mark.parametrize(("raw", "release"), [("0.93.3", (0, 93, 3)), ("0.93", (0, 93, 0)), ("x", None)])
def test_parse_release(raw: str, release: tuple[int, int, int] | None) -> None:
    assert parse_release(raw) == release


# -- what each version states about a pipeline -------------------------------

STEP_PARAMETERS = {
    "load_data": {"data_url": "file:///d.csv", "limit": 100},
    "train_model": {"model_type": "random_forest", "learning_rate": 0.1},
}
PIPELINE_PARAMETERS = {"data_url": "file:///d.csv", "model_type": "random_forest"}


def typed(properties: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {"type": kind} for name, kind in properties.items()},
    }


def template_085() -> Target:
    """A 0.85 run template: spec 0.4 (steps named by
    `pipeline_parameter_name`), names in the configuration template."""
    return target_from_run_template({
        "id": "t", "name": "trainer-prod", "body": {"runnable": True},
        "resources": {"pipeline": {"name": "trainer"}},
        "metadata": {
            "pipeline_spec": {
                "version": "0.4",
                "parameters": PIPELINE_PARAMETERS,
                "steps": [{"pipeline_parameter_name": name, "source": {}} for name in STEP_PARAMETERS],
            },
            "config_template": {"steps": {s: {"parameters": p} for s, p in STEP_PARAMETERS.items()}},
            "config_schema": {"$defs": {"train_model_parameters": {"properties": {"extra_one": {}}}}},
        },
    })


def snapshot_093() -> Target:
    """A 0.93 snapshot: an input schema, step names, no parameter specs."""
    return target_from_snapshot({
        "id": "s", "name": "trainer-prod", "body": {"runnable": True, "is_dynamic": False},
        "resources": {"pipeline": {"name": "trainer"}},
        "metadata": {
            "pipeline_spec": {
                "input_schema": typed({"data_url": "string", "model_type": "string"}),
                "steps": [{"invocation_id": name} for name in STEP_PARAMETERS],
            },
            "step_configurations": {s: {"config": {"parameters": p}} for s, p in STEP_PARAMETERS.items()},
        },
    })


def snapshot_098() -> Target:
    return target_from_snapshot({
        "id": "s", "name": "trainer-prod", "body": {"runnable": True, "is_dynamic": False},
        "resources": {"pipeline": {"name": "trainer"}},
        "metadata": {
            "pipeline_spec": {
                "input_schema": typed({"data_url": "string", "model_type": "string"}),
                "steps": [
                    {"invocation_id": "load_data", "parameter_spec": typed({"data_url": "string", "limit": "integer"})},
                    {
                        "invocation_id": "train_model",
                        "parameter_spec": typed({"model_type": "string", "learning_rate": "number"}),
                    },
                ],
            },
        },
    })


TARGETS = {"0.85": template_085, "0.93": snapshot_093, "0.98": snapshot_098}


@pytest.mark.parametrize("version", TARGETS)
@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        # Flat pipeline parameters go to the steps that take them.
        (
            {"parameters": {"data_url": "s3://b/x.csv", "model_type": "svm"}},
            {"steps": {"load_data": {"parameters": {"data_url": "s3://b/x.csv"}},
                       "train_model": {"parameters": {"model_type": "svm"}}}},
        ),
        (
            {"steps": {"train_model": {"parameters": {"learning_rate": 0.5}}}},
            {"steps": {"train_model": {"parameters": {"learning_rate": 0.5}}}},
        ),
        # `parameters:` left empty in YAML is null: a flat parameter still finds its step.
        (
            {"parameters": {"model_type": "svm"}, "steps": {"train_model": {"parameters": None}}},
            {"steps": {"train_model": {"parameters": {"model_type": "svm"}}}},
        ),
    ],
    ids=["flat", "steps", "null-step-parameters"],
)
def test_both_parameter_forms_on_every_version(version: str, sent: dict[str, Any], expected: dict[str, Any]) -> None:
    assert check_and_translate(sent, TARGETS[version](), "parameters") == expected


ALL = ("0.85", "0.93", "0.98")


@pytest.mark.parametrize(
    ("sent", "message", "caught_on"),
    [
        ({"parameters": {"model_typ": "svm"}}, "Did you mean `model_type`?", ALL),
        ({"steps": {"train_modl": {}}}, "has no step `train_modl`. Did you mean `train_model`?", ALL),
        ({"steps": {"train_model": {"parameters": {"learning_rat": 1}}}}, "Did you mean `learning_rate`?", ALL),
        ({"parameters": {"model_type": 3}}, "has the wrong value 3: expected string", ("0.93", "0.98")),
        ({"steps": {"train_model": {"parameters": {"learning_rate": "fast"}}}}, "expected number", ("0.98",)),
    ],
    ids=["unknown-pipeline-parameter", "unknown-step", "unknown-step-parameter", "pipeline-type", "step-type"],
)
@pytest.mark.parametrize("version", TARGETS)
def test_mistakes_caught_with_what_each_version_states(
    version: str, sent: dict[str, Any], message: str, caught_on: tuple[str, ...]
) -> None:
    if version in caught_on:
        with pytest.raises(ParameterError, match=message.replace("`", ".").replace("?", ".")):
            check_and_translate(sent, TARGETS[version](), "parameters")
    else:
        check_and_translate(sent, TARGETS[version](), "parameters")


def test_a_085_template_also_names_what_its_schema_lists() -> None:
    sent = {"steps": {"train_model": {"parameters": {"extra_one": 1}}}}
    assert check_and_translate(sent, template_085(), "parameters") == sent


@pytest.mark.parametrize(
    ("version", "notes"),
    [
        ("0.85", ["types of step and pipeline parameters are not checked: this server does not publish them"]),
        ("0.93", ["types of step parameters are not checked: this server does not publish them"]),
        ("0.98", []),
    ],
)
def test_what_a_dry_run_says_was_not_checked(version: str, notes: list[str]) -> None:
    assert unchecked(TARGETS[version]()) == notes


@pytest.mark.parametrize(
    ("raw", "client"),
    [
        ("0.85.0", "0.85.0"),
        ("0.93.1.dev20260129", "0.93.1"),
        ("0.98.0rc1", "0.98.0"),
        ("0.91.2+pro.7", "0.91.2"),
        # A newer server gets its own client, not the newest tested one.
        ("0.99.1", "0.99.1"),
    ],
)
def test_code_mode_installs_the_client_release_of_the_server(raw: str, client: str) -> None:
    assert client_zenml_version(server_version({"version": raw})[0]) == client
