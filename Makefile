# CAR-T Watch: two commands on a fresh machine.
#   make run   set up, create data/cartwatch.db with the synthetic sample cohort, start the app,
#              the monitor and the HL7 listener (127.0.0.1:2575) beside it (Ctrl-C stops all)
#   make test  set up and run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
MONITOR_INTERVAL ?= 300
HL7_PORT ?= 2575
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

# The monitor and the HL7 listener run in the background of the app's shell: when the app
# ends, or on Ctrl-C, the EXIT trap stops both and waits for them, so no process is left.
run: db
	@$(PY) -m core monitor --interval $(MONITOR_INTERVAL) & monitor=$$!; \
	$(PY) -m core listen-hl7 --port $(HL7_PORT) & listener=$$!; \
	trap 'kill -TERM $$monitor $$listener 2>/dev/null; wait $$monitor $$listener' EXIT; \
	trap 'exit 130' INT TERM; \
	$(PY) -m dashboard --server.port $(PORT)

test: setup
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

sample: setup
	$(PY) data/sample/generate.py

clean-venv:
	rm -rf $(VENV)
