"""Pure parts of the REST layer that the end-to-end tests cannot vary:
the dashboard link for each kind of server."""

from __future__ import annotations

from typing import Any

import pytest

from zenml_action.api import dashboard_run_url

pytestmark = pytest.mark.offline

PROJECT = "5f0c2b4e-0000-4000-8000-000000000001"
RUN = "9a1d7c3e-0000-4000-8000-000000000002"


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        # ZenML Pro: the cloud dashboard, by project ID.
        (
            {"deployment_type": "cloud", "dashboard_url": "https://cloud.zenml.io/workspaces/ws/"},
            f"https://cloud.zenml.io/workspaces/ws/projects/{PROJECT}/runs/{RUN}",
        ),
        # A self-hosted server's bundled dashboard has one project route.
        (
            {"deployment_type": "docker", "server_url": "https://zenml.example.com"},
            f"https://zenml.example.com/projects/default/runs/{RUN}",
        ),
        # No server_url configured: the address the action talks to.
        ({"deployment_type": "local", "server_url": ""}, f"http://127.0.0.1:8237/projects/default/runs/{RUN}"),
        # /info could not be read: still a link, via `workspace-url`.
        ({}, f"http://127.0.0.1:8237/projects/default/runs/{RUN}"),
        (None, f"http://127.0.0.1:8237/projects/default/runs/{RUN}"),
        # "cloud" without a dashboard URL falls back like any server.
        ({"deployment_type": "cloud"}, f"http://127.0.0.1:8237/projects/default/runs/{RUN}"),
    ],
    ids=["pro", "self-hosted", "no-server-url", "no-info", "info-unreadable", "cloud-without-dashboard"],
)
def test_dashboard_run_url(info: Any, expected: str) -> None:
    assert dashboard_run_url(info, "http://127.0.0.1:8237", PROJECT, RUN) == expected
