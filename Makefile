# Simpul: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PY39_ARCH ?= amd64

.PHONY: setup demo test test-py39 check bench clean

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

# Two workers, a test file each at a time (--dist loadfile keeps a file's fixtures in one
# process): 27 min serial, 16 on this 2-core machine. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The agent's and the bridge's py39 tests with Debian bullseye's python3.9 in a chroot
# (root; docs/py39.md). PY39_ARCH=arm64 runs them under qemu-user-static.
test-py39: setup
	bash scripts/py39-chroot.sh --arch $(PY39_ARCH) $(PYTEST_ARGS)

check: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff check --target-version py39 agent firmware_bridge simpul_wire simpul_field testbed
	$(VENV)/bin/mypy agent broker_config firmware_bridge simpul_wire simpul_field fleet_api simulator testbed

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .demo build *.egg-info
