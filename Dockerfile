# The action's image. GitHub builds it from this file for `uses: ./`, forks and
# branches; release tags point action.yml at the prebuilt multi-arch image on
# ghcr.io instead (.github/workflows/release.yml).
#
# Pinned by tag: a digest pin (python:3.12-slim@sha256:...) would be stricter,
# but it has to be resolved against the registry, which the project's
# machines cannot reach. Dependabot (docker ecosystem) keeps the tag current;
# both stages must name the same image (the venv links to its python).

# --- build: a venv with the pinned dependencies, compiled to bytecode --------
FROM python:3.12-slim AS build
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_SYSTEM_CERTS=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
RUN pip install "uv==${UV_VERSION}"
COPY requirements.txt requirements-code.txt scripts/image/constraints.txt /tmp/deps/
# Wheels only: the slim image has no compiler, and none is needed.
# requirements-code.txt brings uv into the venv as well: code mode runs
# `python -m uv pip install` for a pipeline's `requirements`.
RUN uv venv /opt/venv --python python3 \
 && uv pip install --python /opt/venv/bin/python --only-binary :all: \
        -r /tmp/deps/requirements-code.txt -c /tmp/deps/constraints.txt
COPY entrypoint.py /app/
COPY zenml_action/ /app/zenml_action/
RUN python -m compileall -q /app

# --- runtime: the base image plus the venv and the action's code -------------
FROM python:3.12-slim
LABEL org.opencontainers.image.title="ZenML Pipeline Trigger" \
      org.opencontainers.image.description="GitHub Action that triggers ZenML pipeline runs and reports them back"
# No USER: GitHub runs Docker actions as root and advises against USER (the
# workspace and file-command mounts belong to the runner).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
ENTRYPOINT ["python", "/app/entrypoint.py"]
