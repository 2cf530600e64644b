# Lethe: `make demo` brings everything up and shows an erasure; `make test` runs lint and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install up down status restart-services demo test lint unit integration e2e bench clean docs browser kustomize

help:
	@echo "make demo    - install, start Kafka/Postgres/S3/SMTP and the five services, run an erasure"
	@echo "make test    - install, lint (ruff, mypy), and run unit, integration and e2e tests"
	@echo "make up | down | status | restart-services | lint | bench"
	@echo "make kustomize - build kustomize into .local/bin (make test does; it renders deploy/k8s)"
	@echo "make up PLATFORM_DATABASE_URL=postgresql://... LETHE_DATAMAP_PATH=my-map.yaml"
	@echo "              - the services on your platform database and data map (README)"

# uv (from PyPI) installs the same version ranges as pip would, in seconds rather than half
# a minute. Packages are compiled ahead, as pip does, for environments that set
# PYTHONDONTWRITEBYTECODE (every process would compile what it imports again), all but the
# big ones no process of Lethe's imports: moto's CloudFormation linter and its maths
# (sympy, networkx, mpmath), pip and setuptools, mypy's sources (it runs compiled),
# pygments' lexers (one is loaded, on demand), and moto and pycryptodome, of which the S3
# server imports a few modules. The compile takes a third of the time.
NO_COMPILE := /site-packages/(sympy|networkx|mpmath|cfnlint|pip|setuptools|pkg_resources|mypy|mypyc|pygments/lexers|moto|Crypto)/
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11+ is needed)"; exit 1; }
	@# No pip in the venv (ensurepip takes seconds): the interpreter's pip puts uv there,
	@# or, where that pip is too old for --python, the venv's own.
	test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(PY) install -q 'uv>=0.5,<1' 2>/dev/null \
		|| { $(PY) -m ensurepip >/dev/null && $(PY) -m pip install -q 'uv>=0.5,<1'; }
	$(VENV)/bin/uv pip install -q --python $(PY) -e '.[dev]'
	touch $(STAMP)

COMPILED := $(VENV)/.compiled
$(COMPILED): $(STAMP)
	$(PY) -m compileall -q -j 0 -x '$(NO_COMPILE)' \
		"$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null
	touch $(COMPILED)

install: $(STAMP) $(COMPILED)

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

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

# The web UI's browser tests drive Debian's Chromium (never a browser a tool downloads) and
# check every page with axe-core (WCAG 2.1 A/AA), fetched once from the npm registry into
# .local/axe (tests/browser/a11y.py reads it; the file name carries the version).
AXE_CORE_VERSION := 4.14.1
AXE_JS := .local/axe/axe-core-$(AXE_CORE_VERSION).min.js

$(AXE_JS):
	@command -v npm >/dev/null || { echo "error: npm not found (it fetches axe-core)"; exit 1; }
	mkdir -p .local/axe
	cd .local/axe && npm pack --silent axe-core@$(AXE_CORE_VERSION) >/dev/null \
		&& tar xzf axe-core-$(AXE_CORE_VERSION).tgz package/axe.min.js \
		&& mv package/axe.min.js $(notdir $@) && rm -rf package axe-core-$(AXE_CORE_VERSION).tgz

browser: $(AXE_JS)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
			>/dev/null) || echo "warning: chromium could not be installed: browser tests skip"; \
	else echo "warning: no /usr/bin/chromium and no root apt-get: browser tests skip"; fi

# kustomize renders deploy/k8s in the tests (tests/unit/test_k8s_render.py): built once from its
# Go module (about 30 s) into .local/bin; the stamp names the version, so a new one rebuilds.
KUSTOMIZE_VERSION := v5.8.1
KUSTOMIZE_STAMP := .local/bin/.kustomize-$(KUSTOMIZE_VERSION)
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)

$(KUSTOMIZE_STAMP):
	@command -v $(GO) >/dev/null || { echo "error: go not found (it builds kustomize)"; exit 1; }
	mkdir -p .local/bin
	GOBIN=$(CURDIR)/.local/bin GOTOOLCHAIN=local $(GO) install \
		sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	touch $@

kustomize: $(KUSTOMIZE_STAMP)

# Under `make test` a missing kustomize fails the render test instead of skipping it.
test: export LETHE_REQUIRE_KUSTOMIZE := 1
# Test files run on TEST_WORKERS pytest-xdist workers, each with infrastructure of its own
# (tests/conftest.py): most of a test's time is waiting on Kafka, Postgres and services.
# Infrastructure named by KAFKA_BOOTSTRAP_SERVERS etc. is one shared deployment: one worker.
TEST_WORKERS ?= $(if $(KAFKA_BOOTSTRAP_SERVERS),0,3)
test: $(STAMP) browser kustomize
	@# mypy checks on one core while the packages compile on the other (a fresh venv).
	$(MAKE) --no-print-directory -j 2 --output-sync=target lint $(COMPILED)
	@# Every test starts service processes: compiled once here, not by each of them.
	$(PY) -m compileall -q -j 0 services shared deploy tests bench >/dev/null
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

unit: install
	$(PY) -m pytest -m unit

docs: install
	mkdir -p docs
	$(PY) -m services.cli asyncapi > docs/asyncapi.json

bench: install
	$(PY) -m bench.erase

clean: down
	rm -rf .local $(VENV)
