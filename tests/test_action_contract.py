"""action.yml, the code and the README describe the same inputs and outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from zenml_action.inputs import DEFAULTS
from zenml_action.report import Report

pytestmark = pytest.mark.offline

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
README = (ROOT / "README.md").read_text()


def readme_table(heading: str) -> list[str]:
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z-]+)` \|", section, flags=re.MULTILINE)


def test_inputs_and_defaults_match_the_code() -> None:
    declared = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    assert declared == DEFAULTS


def test_outputs_match_what_the_action_writes() -> None:
    written = set(Report(run_id="x").outputs())
    assert set(ACTION["outputs"]) == written


def test_readme_tables_list_every_input_and_output_in_order() -> None:
    assert readme_table("Inputs") == list(ACTION["inputs"])
    assert readme_table("Outputs") == list(ACTION["outputs"])


def test_readme_defaults_match_action_yml() -> None:
    section = README.split("## Inputs\n", 1)[1].split("\n## ", 1)[0]
    for name, spec in ACTION["inputs"].items():
        if "default" in spec:
            assert f"| `{name}` | `{spec['default']}` |" in section
