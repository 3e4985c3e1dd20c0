# `make demo`: the main job on the embedded default (SQLite, no broker): a shop on
# the foundation schema filled with generated data, then migrated to head with the
# backfills run in batches. `make test`: the test suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DB := $(CURDIR)/instance/demo.db
DEMO_ORDERS ?= 20000

.PHONY: venv demo test lint clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

demo: venv
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	DATABASE_URL=sqlite:///$(DEMO_DB) $(PY) -m alembic upgrade 0002_backfill_state
	DATABASE_URL=sqlite:///$(DEMO_DB) $(PY) -m backend.datagen --orders $(DEMO_ORDERS) --seed 42
	DATABASE_URL=sqlite:///$(DEMO_DB) $(PY) run_migrations.py --batched
	DATABASE_URL=sqlite:///$(DEMO_DB) $(PY) run_migrations.py --status

# Two test processes: most tests wait on subprocesses and databases, not the CPU.
PYTEST_WORKERS ?= 2

test: venv
	$(PY) create_migration.py check
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) instance/*.db*
