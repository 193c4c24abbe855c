# Two commands do all set-up on a fresh machine (see README):
#   make demo   runs the action on its embedded default
#   make test   runs the whole test suite (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9

.PHONY: venv demo demo-server-side test lint

$(VENV)/.installed: requirements.txt requirements-code.txt requirements-dev.txt pipelines/requirements.txt
	python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	python3 -m uv venv --quiet --allow-existing --python 3.11 $(VENV)
	python3 -m uv pip install --quiet --python $(PY) -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

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

test: venv lint
	$(PY) -m pytest
