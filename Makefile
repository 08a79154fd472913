# Everything runs through .venv/bin/...; nothing needs an activated environment.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The suite mostly waits on real servers: three processes (each with its own Temporal dev
# server and test database) halve its time on two cores (four were no faster, and made
# browser tests time out). A file's tests share a process.
PYTEST_WORKERS ?= -n 3 --dist loadfile
# bash: works whether or not the checkout kept the executable bit.
TEST_DEPENDENCIES := bash scripts/check_test_dependencies.sh

.PHONY: venv setup run test test-dependencies test-production lint lint-style lint-layers \
	lint-types bench clean record-histories

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

setup: venv
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py collectstatic --noinput -v0

run: setup
	$(PY) manage.py serve

# Deselects the production-mode tests (their own target below); everything else runs,
# browser and Redis tests included: their programs are installed (or asked for) first.
test: setup
	$(TEST_DEPENDENCIES) chromium redis
	$(VENV)/bin/pytest -m "not production" $(PYTEST_WORKERS) $(PYTEST_ARGS)

# As root, installs what the tests need from Debian's packages; otherwise says how.
test-dependencies:
	$(TEST_DEPENDENCIES)

# Production mode: PostgreSQL, Redis, Temporal, 2 workers and 2 daphne web processes, each
# its own process (scripts/prod_stack.py), from Debian's postgresql and redis-server.
test-production: venv
	$(TEST_DEPENDENCIES) redis postgresql
	PRODUCTION_MODE=1 $(VENV)/bin/pytest -m production tests/production

# Three independent checks: `make -k lint` (CI) reports every one even when one fails.
lint: lint-style lint-layers lint-types

lint-style: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The architecture rules: contracts in pyproject.toml [tool.importlinter].
lint-layers: venv
	$(VENV)/bin/lint-imports --no-logo

lint-types: venv
	$(VENV)/bin/mypy

bench: venv
	$(PY) -m pip install -q -e '.[dev,bench]' && $(PY) bench/run.py

# After a deliberate (workflow.patched) change to workflow code: record the replay
# histories in tests/histories again. The recorder is no test module (record_*.py,
# record_* functions), so the normal run never collects it.
record-histories: venv
	$(VENV)/bin/pytest -o python_functions='record_*' tests/temporal_worker/record_histories.py

# Databases and logs only; the venv stays.
clean:
	rm -f var/*.sqlite3 var/*.sqlite3-shm var/*.sqlite3-wal var/temporal.db var/temporal.db-*
	rm -rf var/log
