# The two commands a newcomer needs: `make demo` and `make test`. Both create the virtualenv and
# install the pinned versions from constraints.txt first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.py constraints.txt | cksum | cut -d' ' -f1)
PORT   ?= 8080
# the real OpenID provider (npm oidc-provider) the demo signs in with and the login tests run against
OIDC   := demo/oidc/node_modules/.installed
# Debian's Chromium for the portal's browser tests (driven by Playwright for Python from the venv)
CHROMIUM := /usr/bin/chromium
# Debian's Slurm and MUNGE for the launch tests against jupyterhub-moss (the tests start the daemons)
SLURM  := /usr/sbin/slurmctld
# Debian's wrk, the HTTP load generator bench/registry.py drives the server with (it falls back to Python without)
WRK    := /usr/bin/wrk
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# the real PaNOSC reference Search API (LoopBack 3), copied from the shared peers folder and installed once per
# package-lock.json; the tests point its memory connector at their own data file through DB_FILE
PANOSC_PEER ?= ../shared/peers/panosc-search-api
PANOSC_DIR  := var/peers/panosc-search-api
PANOSC      := $(PANOSC_DIR)/.installed-$(shell cat $(PANOSC_PEER)/package-lock.json 2>/dev/null | cksum | cut -d' ' -f1)

# `make test` runs on TEST_WORKERS processes (pytest-xdist; a test file stays on one process, so a file's
# module-scoped peers start once) in two rounds: the tests not marked slow with coverage, failing when the line
# coverage of the project's packages falls under COVERAGE_FLOOR, then the slow ones (real peers, processes)
# without it (coverage's tracer on Python 3.11 costs them 50-90% and sees nothing of their subprocesses).
# The floor only rises: when the run reports a higher total, raise it to that figure rounded down.
TEST_WORKERS   ?= 2
COVERAGE_FLOOR := 89
# a run of chosen tests (PYTEST_ARGS=tests/...) is not measured
COVERAGE_ARGS  := --cov --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

# Python may keep compiled bytecode (some machines set PYTHONDONTWRITEBYTECODE): without it every test worker and
# every broker process a test starts compiled the whole project, and pytest rewrote each test module anew
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-fast install bench constraints clean panosc-reference

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.py constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

$(OIDC): demo/oidc/package.json demo/oidc/package-lock.json
	cd demo/oidc && npm ci --no-audit --no-fund --loglevel=error
	touch $@

panosc-reference: $(PANOSC)

$(PANOSC):
	@if [ ! -f $(PANOSC_PEER)/package-lock.json ]; then \
		echo "PaNOSC reference Search API not found at $(PANOSC_PEER): its tests will SKIP"; \
	else \
		rm -rf $(PANOSC_DIR) && mkdir -p $(dir $(PANOSC_DIR)) && cp -R $(PANOSC_PEER) $(PANOSC_DIR) && \
		(cd $(PANOSC_DIR) && npm ci --no-audit --no-fund --loglevel=error) && \
		echo "module.exports = {db: {name: 'db', connector: 'memory', file: process.env.DB_FILE, maxDepthOfQuery: 14}};" \
			> $(PANOSC_DIR)/server/datasources.local.js && \
		touch $@; \
	fi

demo: $(STAMP) $(OIDC)
	$(BIN)/panbroker demo --port $(PORT)

$(CHROMIUM):
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		chromium fonts-dejavu-core || echo "chromium could not be installed: the browser tests will SKIP"

$(SLURM):
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		slurm-wlm munge || echo "slurm-wlm could not be installed: the moss+Slurm launch tests will SKIP"

$(WRK):
	$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
		wrk || echo "wrk could not be installed: bench/registry.py falls back to its Python load generator"

# the house rules first: lint, the layering contracts (.importlinter: which layer may import which), then the tests
test: $(STAMP) $(OIDC) $(CHROMIUM) $(SLURM) $(PANOSC)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
ifeq ($(PYTEST_ARGS),)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(COVERAGE_ARGS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m slow
else
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
endif

# the tests that start no real peer and take under ~1 s each (pytest -m "not slow"): under 2 minutes
test-fast: $(STAMP) $(OIDC)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP) $(OIDC) $(SLURM) $(PANOSC) $(WRK)
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/synonyms.py
	$(BIN)/python bench/launch.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/oai.py

# Re-pin every dependency to what resolves today (run after changing setup.py's requirements).
constraints:
	rm -rf .constraints-venv && $(PYTHON) -m venv .constraints-venv
	.constraints-venv/bin/pip install --quiet --disable-pip-version-check '.[test,elasticsearch]'
	.constraints-venv/bin/pip freeze --exclude panbroker | grep -v '^-e' > constraints.txt
	rm -rf .constraints-venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage test-output demo/oidc/node_modules
