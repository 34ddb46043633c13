# radbill: two commands do everything on a fresh Debian 12 machine (as root or with sudo).
#   make run    install what is missing, migrate, seed a demo ISP, start FreeRADIUS + a simulated NAS
#   make test   install what is missing, run the whole suite on SQLite and on PostgreSQL
#               (side by side; `make test DB=sqlite` runs one with live output)

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# rlm_python3 embeds Debian's libpython3.11: the venv must be built from that interpreter.
SYSTEM_PYTHON := /usr/bin/python3
DB ?= both
# each pass ends with its slowest tests, so a suite that grows slow says where
PYTEST_ARGS ?= --durations=15

.PHONY: setup run test test-sqlite test-postgresql lint bench clean lock install uninstall

# Every version comes from requirements-dev.lock (hashes checked), so every machine and CI run
# gets the same packages; radbill itself is installed on top without resolving anything.
$(VENV)/.installed: pyproject.toml requirements-dev.lock scripts/setup-debian.sh
	bash scripts/setup-debian.sh
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 $(PY) -m pip install --quiet --require-hashes \
		--only-binary :all: -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m radbill.cli db upgrade
	$(PY) -m radbill.demo

test: setup lint
ifeq ($(DB),both)
	@# the two runs side by side: most of a run is waiting on FreeRADIUS, sockets and timers,
	@# so together they take little longer than one; each run's output is printed when it ends.
	@# Tests that never touch the database run once, in the SQLite pass (tests/conftest.py).
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgresql \
		DATABASE_ONLY_PASS=postgresql
else
	$(MAKE) --no-print-directory test-$(DB)
endif

test-sqlite: setup
	RADBILL_TEST_DB=sqlite $(PY) -m pytest $(PYTEST_ARGS)

test-postgresql: setup
	RADBILL_TEST_DB=postgresql \
	RADBILL_TEST_DATABASE_ONLY=$(if $(filter postgresql,$(DATABASE_ONLY_PASS)),1,0) \
		$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check radbill billing radius coa olt simulators admin payments notify usage reports portal retention tests bench
	$(VENV)/bin/mypy

# Regenerate the lock files after a change to pyproject.toml's dependencies (uv resolves for
# every Python radbill supports, 3.11 to 3.13, and records every file's SHA-256).
lock: setup
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 \
		--generate-hashes --no-header --quiet -o requirements.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes --no-header --quiet -o requirements-dev.lock

# Install radbill as system services on this server (see scripts/install.sh --help).
install:
	bash scripts/install.sh $(INSTALL_ARGS)

uninstall:
	bash scripts/install.sh --uninstall $(INSTALL_ARGS)

bench: setup
	$(PY) bench/auth_throughput.py

clean:
	rm -rf $(VENV) var build *.egg-info test-artifacts
