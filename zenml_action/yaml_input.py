"""YAML from an input, read safely and checked to travel as JSON: a size
and node budget (no "billion laughs"), a key given twice refused, and no
YAML-only values (dates, sets, binary) or non-finite numbers."""

from __future__ import annotations

import datetime
import itertools
import math
from typing import Any

import yaml

from zenml_action.errors import InputError

MAX_YAML_BYTES = 256 * 1024
MAX_YAML_NODES = 20_000
# Deeper values would strain every recursive step after parsing (copying,
# JSON encoding, the summary); no run configuration needs more.
MAX_YAML_DEPTH = 50


def _count_nodes(node: yaml.Node | None, budget: list[int]) -> None:
    """Count nodes as they would be after alias expansion; a small document
    with nested aliases ("billion laughs") expands to millions."""
    budget[0] -= 1
    if budget[0] >= 0 and isinstance(node, yaml.CollectionNode):
        pairs = node.value if isinstance(node, yaml.MappingNode) else [(child,) for child in node.value]
        for child in itertools.chain.from_iterable(pairs):
            _count_nodes(child, budget)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (by
    default the last one would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            # The mapping's own plain keys; `<<` merges may be overridden.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"the key `{key_node.value}` is given twice", key_node.start_mark
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def parse_yaml_mapping(name: str, text: str) -> dict[str, Any]:
    value = parse_yaml_value(name, text)
    if not isinstance(value, dict | None):
        fix = "Write `name: value` pairs, e.g. `model_type: gradient_boosting`."
        raise InputError(name, f"is YAML of type {type(value).__name__}, not a mapping.", fix)
    return value or {}


def parse_yaml_value(name: str, text: str) -> Any:
    """Any YAML value that travels as JSON (`true`, `0.9`, a mapping)."""
    value = _load(name, text)
    _check_json_values(name, value)
    return value


def _load(name: str, text: str) -> Any:
    if len(text.encode()) > MAX_YAML_BYTES:
        raise InputError(name, f"is larger than {MAX_YAML_BYTES // 1024} KiB.", "Pass only the settings you change.")
    try:
        budget = [MAX_YAML_NODES]
        _count_nodes(yaml.compose(text, Loader=yaml.SafeLoader), budget)
        if budget[0] < 0:
            fix = "Pass only the settings you change, and write them out without nested YAML aliases."
            problem = f"has more than {MAX_YAML_NODES} values once its aliases are expanded."
            raise InputError(name, problem, fix)
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InputError(name, f"has a value Python cannot read ({exc}).", "Quote very long numbers to pass them as text.") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        fix = "Write a mapping such as `model_type: gradient_boosting`, one key per line."
        raise InputError(name, f"is not valid YAML{where}: {problem}.", fix) from exc
    except RecursionError as exc:
        raise InputError(name, "is nested too deeply.", "Flatten the YAML.") from exc


def _check_json_values(name: str, value: Any, path: str = "", depth: int = 0) -> None:
    """Everything must travel as JSON: string keys, and no YAML-only values
    (dates, binary, sets) or non-finite numbers, which would otherwise fail
    while sending, or reach the server changed."""
    where = f"at `{path}`" if path else "at the top level"
    if depth > MAX_YAML_DEPTH:
        raise InputError(name, f"is nested more than {MAX_YAML_DEPTH} levels deep.", "Flatten the YAML.")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                fix = "Quote the key, e.g. `\"1\": value`."
                raise InputError(name, f"has a key `{key!r}` {where} that is not a string.", fix)
            _check_json_values(name, item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_values(name, item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        fix = "Use a finite number, or quote the value to pass it as text."
        raise InputError(name, f"has the value `{value}` {where}, which is not a finite number.", fix)
    elif isinstance(value, datetime.date):  # a datetime too
        problem = f"has the date `{value.isoformat()}` {where}, which YAML reads as a date, not text."
        raise InputError(name, problem, f"Quote it (`'{value.isoformat()}'`) to pass it as a string.")
    elif value is not None and not isinstance(value, (str, bool, int, float)):
        problem = f"has a value of YAML type `{type(value).__name__}` {where}, which cannot be sent as JSON."
        raise InputError(name, problem, "Use plain strings, numbers, booleans, lists and mappings.")
