# Everything runs through .venv/bin/...; nothing needs an activated environment.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv setup run test test-production lint bench clean record-histories

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

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Production mode: PostgreSQL, Redis, Temporal, 2 workers and 2 daphne web processes, each
# its own process (scripts/prod_stack.py). Needs Debian's postgresql and redis-server.
test-production: venv
	PRODUCTION_MODE=1 $(VENV)/bin/pytest -m production tests/production

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv
	$(PY) -m pip install -q -e '.[dev,bench]' && $(PY) bench/run.py

# After a deliberate (workflow.patched) change to workflow code: record the replay
# histories again from the scenarios in tests/temporal_worker/test_replay.py.
record-histories: venv
	RECORD_HISTORIES=1 $(VENV)/bin/pytest tests/temporal_worker/test_replay.py -k record_history

# Databases and logs only; the venv stays.
clean:
	rm -f var/*.sqlite3 var/*.sqlite3-shm var/*.sqlite3-wal var/temporal.db var/temporal.db-*
	rm -rf var/log
