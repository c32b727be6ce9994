# mailbot developer and CI entry points. `make test` is what CI runs (via .ci/run).
#
#   make venv          .venv with mailbot installed editable plus the test extras
#   make system-deps   Dovecot (dovecot-imapd) for the integration tests, without starting its service,
#                      systemd-analyze (systemd) for the unit test, and Chromium (chromium) that
#                      opens the HTML report offline in its test
#   make postgres      make sure the PostgreSQL server on 127.0.0.1:5432 runs (starts a stopped cluster)
#   make test          venv + system-deps + postgres, then pytest; extra args: make test PYTEST_ARGS='-k idle -x'
#   make demo | bench | clean | distclean

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON      ?= python3
VENV        := .venv
VPY         := $(VENV)/bin/python
# Touched after a successful install; pyproject.toml newer than it means "reinstall".
VENV_STAMP  := $(VENV)/.mailbot-installed
PYTEST_ARGS ?=

.PHONY: venv system-deps postgres test demo bench clean distclean

venv: $(VENV_STAMP)

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(VENV_STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet -e '.[test]'
	touch $@

# Dovecot is a system package, not a Python one. Its Debian package would normally start a
# system-wide service on install; a temporary policy-rc.d that exits 101 forbids that (the tests
# start private instances themselves). An existing policy-rc.d is kept and left as it was.
system-deps:
	@missing=""; \
	if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then missing="dovecot-imapd"; fi; \
	if ! command -v systemd-analyze >/dev/null 2>&1; then missing="$$missing systemd"; fi; \
	if ! command -v chromium >/dev/null 2>&1; then missing="$$missing chromium"; fi; \
	if [ -z "$$missing" ]; then \
		echo "system-deps: dovecot present ($$(PATH="$$PATH:/usr/sbin" dovecot --version)), systemd-analyze present, $$(chromium --version 2>/dev/null)"; \
		exit 0; \
	fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "system-deps: missing$$missing; installing needs root:" >&2; \
		echo "    sudo apt-get install$$missing    (then stop/disable dovecot's service if you like)" >&2; \
		if [ "$${CI:-}" = true ]; then exit 1; fi; \
		echo "system-deps: continuing; the tests that need them will be skipped" >&2; \
		exit 0; \
	fi; \
	created_policy=no; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
		printf '#!/bin/sh\n# temporary, from mailbot make system-deps: do not start services\nexit 101\n' \
			> /usr/sbin/policy-rc.d; \
		chmod 755 /usr/sbin/policy-rc.d; \
		created_policy=yes; \
	fi; \
	trap 'if [ "$$created_policy" = yes ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT; \
	echo "system-deps: installing$$missing"; \
	apt-get update -q; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	/usr/sbin/dovecot --version; \
	chromium --version

# The PostgreSQL tests use the server this machine kind runs on 127.0.0.1:5432 (trust auth,
# database `test`); when its cluster is installed but stopped, start it (as root).
postgres:
	@if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then \
		echo "postgres: 127.0.0.1:5432 accepts connections"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then \
		for version in $$(ls /etc/postgresql); do \
			pg_ctlcluster --skip-systemctl-redirect $$version main start || true; done; \
	fi; \
	if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 -t 10; then \
		echo "postgres: started"; exit 0; fi; \
	echo "postgres: no server on 127.0.0.1:5432 (set MAILBOT_TEST_PG to another URL)" >&2; \
	if [ "$${CI:-}" = true ]; then exit 1; fi

test: venv system-deps postgres
	@rc=0; $(VPY) -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; that is a failure" >&2; fi; \
	exit $$rc

demo: venv
	$(VENV)/bin/mailbot demo

bench: venv system-deps
	$(VPY) bench/ingest.py $(BENCH_ARGS)

clean:
	rm -rf .pytest_cache .hypothesis build dist *.egg-info $(VENV_STAMP)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
