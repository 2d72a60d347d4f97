# `make run` serves the demo catalogue; `make test` runs the test suite;
# `make drills` runs the slow fault, restart and fuzz drills (installs nginx).
# All need only Python 3.11+: everything else installs into .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: install run test drills lint bench clean

install: $(INSTALLED)

$(INSTALLED): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# No DATABASE_URL given: the embedded PostgreSQL, asked for by name.
run: install
	DATABASE_URL="$${DATABASE_URL:-embedded}" $(BIN)/python -m app.localserver

test: install
	$(BIN)/python -m pytest -m "not drill"

drills: install
	command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }
	$(BIN)/python -m pytest -m drill

bench: install
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
