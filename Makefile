# Both targets do all set-up themselves on a fresh machine.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= build/demo

.PHONY: setup demo chromium lrzip test lint bench clean

# The venv with PyTorch first (TORCH_SPEC), then the extras a target needs
# (pyproject.toml): the tests everything (.[dev]), the demo the engine, the trainer,
# the service and the demo's text (.[demo,train,service]).
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

$(VENV)/.installed-demo: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[demo,train,service]"
	touch $@

setup: $(VENV)/.installed-dev

# The demo's data and artifact are file targets: a second `make demo` (or KEEP=1) reuses
# them while they are newer than what made them; `make clean` starts over.
DEMO_DATA := $(DEMO_DIR)/datasets/demo
DEMO_STAMP := $(DEMO_DIR)/datasets/.demo.stamp

$(DEMO_STAMP): golf/data/demo.py | $(VENV)/.installed-demo
	$(VENV)/bin/golf data demo --out $(DEMO_DATA)
	touch $@

# Written under a temporary name, so an interrupted run leaves no "current" artifact.
$(DEMO_DIR)/tiny.golf: $(DEMO_STAMP)
	$(VENV)/bin/golf train --preset tiny --data $(DEMO_DATA) \
		--out $(DEMO_DIR)/tiny.part.golf --log $(DEMO_DIR)/train.jsonl
	mv $(DEMO_DIR)/tiny.part.golf $@

demo: $(DEMO_DIR)/tiny.golf
	$(VENV)/bin/golf inspect $(DEMO_DIR)/tiny.golf
	DEMO_DIR=$(DEMO_DIR) scripts/demo_service.sh

# The dashboard's browser test drives Debian's chromium (tests/test_dashboard.py).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# lrzip-compressed record artifacts are read through Debian's lrzip binary
# (tests/test_formats.py; its cases are skipped without it).
lrzip:
	@command -v lrzip >/dev/null || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lrzip >/dev/null) || true

# The layer contracts of pyproject.toml ([tool.importlinter]) first, then the tests.
test: setup chromium lrzip
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -m "not slow" -q

# A real two-node Ray cluster on this machine, the service joined to it, one node
# stopped mid-job (tests/test_cluster.py; about a minute).
.PHONY: test-cluster
test-cluster: setup
	$(VENV)/bin/python -m pytest -m cluster -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(VENV)/bin/python bench/slot.py
	$(VENV)/bin/python bench/train.py
	$(VENV)/bin/python bench/service.py

clean:
	rm -rf build .pytest_cache
