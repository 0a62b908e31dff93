# CAR-T Watch: two commands on a fresh machine.
#   make run   set up, create data/cartwatch.db with the synthetic sample cohort, start the app
#              and the monitor beside it (Ctrl-C stops both)
#   make test  set up and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
MONITOR_INTERVAL ?= 300
PYTEST_ARGS ?=

.PHONY: setup db run test lint bench sample clean-venv

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# init last: on a first run the admin password it prints once is then the last thing
# above the server's address (seed-sample and evaluate create the schema themselves)
db: setup
	$(PY) -m core seed-sample
	$(PY) -m core evaluate > /dev/null
	$(PY) -m core init

# The monitor runs in the background of the app's shell: when the app ends, or on Ctrl-C,
# the EXIT trap stops the monitor and waits for it, so no process is left behind.
run: db
	@$(PY) -m core monitor --interval $(MONITOR_INTERVAL) & monitor=$$!; \
	trap 'kill -TERM $$monitor 2>/dev/null; wait $$monitor' EXIT; \
	trap 'exit 130' INT TERM; \
	$(PY) -m dashboard --server.port $(PORT)

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m bench

sample: setup
	$(PY) data/sample/generate.py

clean-venv:
	rm -rf $(VENV)
