# Lethe: `make demo` brings everything up and shows an erasure; `make test` runs lint and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install up down status restart-services demo test lint unit integration e2e bench clean docs browser

help:
	@echo "make demo    - install, start Kafka/Postgres/S3/SMTP and the five services, run an erasure"
	@echo "make test    - install, lint (ruff, mypy), and run unit, integration and e2e tests"
	@echo "make up | down | status | restart-services | lint | bench"
	@echo "make up PLATFORM_DATABASE_URL=postgresql://... LETHE_DATAMAP_PATH=my-map.yaml"
	@echo "              - the services on your platform database and data map (README)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11+ is needed)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: install
	$(PY) -m deploy.local.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m deploy.local.stack down; else echo "nothing to stop"; fi

status: install
	$(PY) -m deploy.local.stack status

# Both take PLATFORM_DATABASE_URL=... LETHE_DATAMAP_PATH=... (unset or empty: the sample).
restart-services: install
	$(PY) -m deploy.local.stack restart-services

demo: up
	$(PY) -m deploy.local.demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# The web UI's browser tests drive Debian's Chromium (never a browser a tool downloads).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			>/dev/null) || echo "warning: chromium could not be installed: browser tests skip"; \
	else echo "warning: no /usr/bin/chromium and no root apt-get: browser tests skip"; fi

test: lint browser
	$(PY) -m pytest

unit: install
	$(PY) -m pytest -m unit

docs: install
	mkdir -p docs
	$(PY) -m services.cli asyncapi > docs/asyncapi.json

bench: install
	$(PY) -m bench.erase

clean: down
	rm -rf .local $(VENV)
