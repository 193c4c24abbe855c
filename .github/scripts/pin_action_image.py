"""Point action.yml at a prebuilt image: `runs.image: docker://IMAGE`.

    python .github/scripts/pin_action_image.py ghcr.io/owner/repo:v1.2.3 [action.yml]

Used by the release workflow on the release commit only: on branches (and
for `uses: ./` and forks) action.yml keeps `image: Dockerfile`, so GitHub
builds the image from source; a release tag names the image that was built,
pushed and checked for it, and the runner just pulls it. Edits the one
`image:` line in place (comments and layout are kept) and checks the result.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

IMAGE_PATTERN = re.compile(r"[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+:v\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?")
IMAGE_LINE = re.compile(r"^(?P<indent>[ \t]+)image:[ \t]*(?P<value>\S.*?)[ \t]*$", re.MULTILINE)


def pin(text: str, image: str) -> str:
    if not IMAGE_PATTERN.fullmatch(image):
        raise ValueError(f"not a lower-case registry/repository:vX.Y.Z image: {image!r}")
    runs = yaml.safe_load(text).get("runs", {})
    if runs.get("using") != "docker":
        raise ValueError("action.yml is not a Docker action (runs.using is not docker)")
    if runs.get("image") != "Dockerfile":
        raise ValueError(f"runs.image is {runs.get('image')!r}, expected Dockerfile: already pinned?")
    lines = [m for m in IMAGE_LINE.finditer(text) if m.group("value").strip("'\"") == "Dockerfile"]
    if len(lines) != 1:
        raise ValueError(f"expected one `image: Dockerfile` line, found {len(lines)}")
    match = lines[0]
    new = text[: match.start()] + f"{match.group('indent')}image: docker://{image}" + text[match.end():]
    if yaml.safe_load(new).get("runs", {}).get("image") != f"docker://{image}":
        raise ValueError("rewriting action.yml did not set runs.image")
    return new


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1] if len(argv) == 2 else "action.yml")
    try:
        path.write_text(pin(path.read_text(encoding="utf-8"), argv[0]), encoding="utf-8")
    except ValueError as exc:
        print(f"::error title=pin_action_image::{exc}")
        return 1
    print(f"{path}: runs.image = docker://{argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
