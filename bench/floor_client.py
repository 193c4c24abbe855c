"""The floor: the least a client can do to trigger a ZenML snapshot run.

Standard library only, three requests and nothing else: exchange the API key
for a token once, look the snapshot up by name, trigger it. No validation,
no retries, no error translation, no dashboard link: this is the lower bound
the action is compared against, not something to ship.

    ZENML_STORE_URL=http://... ZENML_STORE_API_KEY=ZENKEY_... \\
        python bench/floor_client.py trainer-prod

Prints the run's ID on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from typing import Any

RUN_CONFIGURATION = {"steps": {"train_model": {"parameters": {"model_type": "gradient_boosting"}}}}


def call(url: str, *, token: str = "", form: dict[str, str] | None = None, body: Any = None) -> Any:
    headers = {"Accept": "application/json"}
    data = None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - http(s) URL from the caller
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return json.loads(response.read())


def main(snapshot_name: str) -> int:
    base = os.environ["ZENML_STORE_URL"].rstrip("/") + "/api/v1"
    api_key = os.environ["ZENML_STORE_API_KEY"]
    token = call(f"{base}/login", form={"grant_type": "zenml-api-key", "password": api_key})["access_token"]
    query = urllib.parse.urlencode({"name": snapshot_name, "named_only": "true"})
    snapshot_id = call(f"{base}/pipeline_snapshots?{query}", token=token)["items"][0]["id"]
    run = call(
        f"{base}/pipeline_snapshots/{snapshot_id}/runs",
        token=token,
        body={"run_configuration": RUN_CONFIGURATION},
    )
    print(run["id"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "trainer-prod"))
