# Sourced by the scripts in scripts/image/: the podman set-up they share.
# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
IMAGE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGE_DIR/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$IMAGE_DIR/containers.conf}"
# The tag the tests and act use for the action's image.
ACTION_IMAGE="${ACTION_IMAGE:-localhost/zenml-pipeline-trigger-action:dev}"

log() { printf '[image] %s\n' "$*" >&2; }

# Install podman and friends from Debian's archive, once.
ensure_tools() {
  local missing=()
  local tool
  for tool in podman buildah runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
      log "missing ${missing[*]}: install them (apt-get install podman buildah runc debootstrap) or run as root"
      return 1
    fi
    log "installing ${missing[*]} from apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq podman buildah runc debootstrap >/dev/null
  fi
}
