#!/usr/bin/env bash
# Run scripts/image/act-workflow.yml (or another workflow) with act through
# podman: a podman API socket stands in for the Docker engine.
#
#   scripts/image/act.sh --var ZENML_URL=http://127.0.0.1:8237 --secret ZENML_API_KEY=... [act flags]
#
# The runner image is the Dockerfile's base (present after build.sh); act
# builds the action's image from the Dockerfile for `uses: ./`. Nothing is
# pulled (--pull=false, --action-offline-mode). With IMAGE_ENGINE=docker it
# uses the local Docker engine instead of podman.
#
# ACT_PREBUILT_IMAGE=name:tag skips act's own build of the Dockerfile (about
# a minute, uncached through podman's API): that image, already built from
# the same Dockerfile by build.sh, is what act runs for `uses: ./`.
set -euo pipefail
# shellcheck source=scripts/image/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ACT="${ACT:-act}"
WORKFLOW="${ACT_WORKFLOW:-$IMAGE_DIR/act-workflow.yml}"
RUNNER_IMAGE="${ACT_RUNNER_IMAGE:-}"
socket_dir=""
ENGINE="${IMAGE_ENGINE:-podman}"
# The name act gives the image it builds for `uses: ./` at the repository root.
ACT_ACTION_IMAGE="docker.io/library/act-dockeraction:latest"
rebuild=()

cleanup() {
  if [[ -n "${service_pid:-}" ]]; then
    # Containers this run of act left behind (it names them act-...), then
    # the service.
    local id
    for id in $(podman ps -aq --filter name=^act-); do
      grep -qx "$id" <<<"$containers_before" || podman rm -f "$id" >/dev/null 2>&1 || true
    done
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  [[ -n "$socket_dir" ]] && rm -rf "$socket_dir"
  if ((${#rebuild[@]})); then
    "$ENGINE" rmi "$ACT_ACTION_IMAGE" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if [[ -n "${ACT_PREBUILT_IMAGE:-}" ]]; then
  "$ENGINE" tag "$ACT_PREBUILT_IMAGE" "$ACT_ACTION_IMAGE"
  rebuild=(--rebuild=false)
fi

if [[ "$ENGINE" == podman ]]; then
  containers_before="$(podman ps -aq)"
  socket_dir="$(mktemp -d /tmp/act-podman.XXXXXX)"
  podman system service --time=0 "unix://$socket_dir/podman.sock" &
  service_pid=$!
  for _ in $(seq 50); do [[ -S "$socket_dir/podman.sock" ]] && break; sleep 0.1; done
  export DOCKER_HOST="unix://$socket_dir/podman.sock"
  RUNNER_IMAGE="${RUNNER_IMAGE:-docker.io/library/python:3.12-slim}"
else
  RUNNER_IMAGE="${RUNNER_IMAGE:-python:3.12-slim}"
fi

cd "$REPO_ROOT"
"$ACT" workflow_dispatch -W "$WORKFLOW" \
  --bind --pull=false --action-offline-mode \
  -P "ubuntu-latest=$RUNNER_IMAGE" \
  "${rebuild[@]}" "$@"
