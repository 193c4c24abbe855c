#!/usr/bin/env bash
# A hand-written trigger, as a user would put it in a workflow step: the API
# key goes as the bearer token on every request (no login exchange), the
# pipeline and snapshot are looked up by name, then the snapshot is run.
#
#   ZENML_STORE_URL=http://... ZENML_STORE_API_KEY=ZENKEY_... \
#       bash bench/curl_trigger.sh trainer-prod trainer
#
# Prints the run's ID. JSON is read with jq, or with python3 when jq is
# missing (BENCH_JSON=python3 forces that); the tool used goes to stderr.
set -euo pipefail

snapshot="${1:-trainer-prod}"
pipeline="${2:-trainer}"
api="${ZENML_STORE_URL%/}/api/v1"
auth="Authorization: Bearer ${ZENML_STORE_API_KEY}"

json_tool="${BENCH_JSON:-}"
if [[ -z "$json_tool" ]]; then
  if command -v jq >/dev/null; then json_tool=jq; else json_tool=python3; fi
fi
echo "json: $json_tool" >&2

# first_id / run_id: read an ID out of the JSON on stdin.
first_id() {
  if [[ "$json_tool" == jq ]]; then jq -er '.items[0].id'
  else python3 -c 'import json, sys; print(json.load(sys.stdin)["items"][0]["id"])'; fi
}
run_id() {
  if [[ "$json_tool" == jq ]]; then jq -er '.id'
  else python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'; fi
}

pipeline_id=$(curl -fsS -H "$auth" --get "$api/pipelines" \
  --data-urlencode "name=$pipeline" | first_id)
snapshot_id=$(curl -fsS -H "$auth" --get "$api/pipeline_snapshots" \
  --data-urlencode "name=$snapshot" --data-urlencode "pipeline=$pipeline_id" | first_id)
curl -fsS -H "$auth" -H "Content-Type: application/json" \
  -d '{"run_configuration": {"steps": {"train_model": {"parameters": {"model_type": "gradient_boosting"}}}}}' \
  "$api/pipeline_snapshots/$snapshot_id/runs" | run_id
