# Simpul: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test check bench clean

setup: $(STAMP)
	@bash scripts/setup-system.sh
	@bash scripts/build-dashboard.sh

# Reinstall only when the dependency list changes; a second `make setup` takes seconds.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(PY) -m simulator.demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check --target-version py39 agent firmware_bridge simpul_wire
	$(VENV)/bin/mypy agent firmware_bridge simpul_wire fleet_api simulator

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .demo build *.egg-info
