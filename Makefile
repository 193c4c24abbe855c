# Two commands do all set-up on a fresh machine (see README):
#   make demo   runs the action on its embedded default
#   make test   runs the whole test suite (what CI runs)
# and one checks a change in under a minute, with no ZenML server:
#   make check  ruff, mypy and the tests marked `offline`
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9

.PHONY: venv mermaid demo demo-server-side check test test-executing lint lint-workflows image test-image image-lock bench bench-quick

$(VENV)/.installed: requirements.txt requirements-code.txt requirements-dev.txt requirements-lint.txt pipelines/requirements.txt
	python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	python3 -m uv venv --quiet --allow-existing --python 3.11 $(VENV)
	python3 -m uv pip install --quiet --python $(PY) -r requirements-dev.txt -r requirements-lint.txt
	touch $@

venv: $(VENV)/.installed

# Mermaid's own parser under Node.js (pinned by its package-lock.json), which
# checks the report's trend charts (tests/test_report_rendering.py).
MERMAID := tests/support/mermaid
$(MERMAID)/node_modules/.installed: $(MERMAID)/package.json $(MERMAID)/package-lock.json
	cd $(MERMAID) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

mermaid: $(MERMAID)/node_modules/.installed

# The sample pipeline through the action's own entrypoint, in code mode on a
# local ZenML store in ./.zenml-local (no server needed).
demo: venv
	GITHUB_WORKSPACE=$(CURDIR) $(PY) entrypoint.py \
		--pipeline pipelines/training.py:training_pipeline \
		--requirements pipelines/requirements.txt \
		--parameters 'model_type: gradient_boosting'

demo-server-side: venv
	$(PY) scripts/demo_server_side.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: venv mermaid lint
	$(PY) -m pytest

# The rules in-process, stand-in servers on loopback, the workflow linters:
# every test that needs no ZenML server and takes seconds (pytest marker
# `offline`), after the linters.
check: venv mermaid lint
	$(PY) -m pytest -q -m offline

# The executing tier alone (tests/test_executed_runs.py: a server that really
# runs the sample pipeline; CONTRIBUTING.md, "Executing test tier").
test-executing: venv
	$(PY) -m pytest -m executing

# The workflow, action and Dockerfile linters (tests/test_workflows.py runs
# them too, with more checks).
lint-workflows: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/actionlint
	$(VENV)/bin/zizmor --offline --strict-collection .
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml scripts/image/act-workflow.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-actions action.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(VENV)/bin/hadolint Dockerfile

# Build the action's image with podman (a Debian stand-in base where no
# registry is reachable); test-image runs it as GitHub runs a Docker action.
image:
	bash scripts/image/build.sh

test-image: venv
	$(PY) -m pytest -m image tests/test_image.py

# Re-pin what zenml pulls into the image (then restore the file's header).
image-lock:
	python3 -m uv pip compile requirements-code.txt --universal --python-version 3.11 --no-header --no-annotate -o scripts/image/constraints.txt

# The trigger benchmark against a real local server (bench/README.md):
# writes bench/RESULTS.md; bench-quick is the short version (CI's bench job
# puts bench/results/quick.md in its summary).
bench: venv
	$(PY) bench/run.py --output bench/RESULTS.md

bench-quick: venv
	$(PY) bench/run.py --quick --output bench/results/quick.md
