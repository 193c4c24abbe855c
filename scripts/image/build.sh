#!/usr/bin/env bash
# Build the action's image with podman, offline from any container registry.
#
#   scripts/image/build.sh            # base stand-in (once) + action image
#   ACTION_IMAGE=name:tag scripts/image/build.sh
#
# No registry is reachable on the project's machines, so the Dockerfile's
# `FROM python:3.12-slim` cannot be pulled. Unless an image of that name is
# already in podman's store, a stand-in is made from Debian bookworm with
# debootstrap (Python 3.11, not 3.12) and tagged with the FROM name; it is
# cached in podman's store and reused by later runs. The action image is then
# built with `podman build --pull=never`, exactly from the Dockerfile GitHub
# builds. Prints the action image's tag on stdout.
set -euo pipefail
# shellcheck source=scripts/image/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STANDIN_LABEL="org.zenml-action.standin=debian-bookworm"

base_image_name() {
  # The first stage's FROM, e.g. python:3.12-slim -> docker.io/library/python:3.12-slim
  local from
  from="$(awk 'toupper($1) == "FROM" { print $2; exit }' "$REPO_ROOT/Dockerfile")"
  case "$from" in
    */*) printf '%s\n' "$from" ;;
    *) printf 'docker.io/library/%s\n' "$from" ;;
  esac
}

build_standin_base() {
  local name="$1" rootfs started=$SECONDS
  rootfs="$(mktemp -d /var/tmp/standin-rootfs.XXXXXX)"
  # shellcheck disable=SC2064  # expand now: the trap must know this path
  trap "rm -rf '$rootfs'" EXIT
  log "debootstrap bookworm into $rootfs (about 80 s)"
  debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$rootfs" "$DEBIAN_MIRROR" >"$rootfs.log" 2>&1 || {
      tail -30 "$rootfs.log" >&2
      return 1
    }
  rm -f "$rootfs.log"
  log "debootstrap done in $((SECONDS - started)) s"
  # Like the official image: pip may install into the system Python, and
  # `python`/`pip` exist.
  rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf python3 "$rootfs/usr/bin/python"
  ln -sf pip3 "$rootfs/usr/bin/pip"
  # Downloads during the build go through this machine's TLS proxy: trust
  # the CAs the host trusts.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  # Trim what a slim image would not carry.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["python3"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL $STANDIN_LABEL" \
    - "$name" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
}

main() {
  ensure_tools
  local base started
  base="$(base_image_name)"
  started=$SECONDS
  if podman image exists "$base"; then
    log "base $base present (cached)"
  else
    build_standin_base "$base"
    log "stand-in base $base built in $((SECONDS - started)) s"
  fi
  started=$SECONDS
  # --network host: the RUN steps reach PyPI like the host does.
  podman build --pull=never --network host --layers \
    -f "$REPO_ROOT/Dockerfile" -t "$ACTION_IMAGE" "$REPO_ROOT" >&2
  log "action image $ACTION_IMAGE built in $((SECONDS - started)) s," \
    "$(podman image inspect --format '{{.Size}}' "$ACTION_IMAGE") bytes"
  printf '%s\n' "$ACTION_IMAGE"
}

main "$@"
