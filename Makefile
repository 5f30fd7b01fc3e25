# kvdr developer entry points. `make run` is the main job, `make test` the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-browser install-prometheus install-checkov run test test-fast lint lock bench bench-full clean

install: $(STAMP) node_modules/.package-lock.json

# The dashboard test drives Debian's headless Chromium; install it where missing.
install-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the dashboard test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The deploy tests run Debian's prometheus (a real server scraping the daemon) and its
# promtool (rule checks and unit tests); install the package where promtool is missing.
install-prometheus:
	@command -v promtool >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus for the deploy tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }

# checkov pins packaging<24 (pytest needs >=24) and ships its own `hcl2` module, so the
# deploy scan runs it from an environment of its own, from its own hashed lock.
CHECKOV_VENV := $(VENV)/tools/checkov
install-checkov: $(CHECKOV_VENV)/.installed
$(CHECKOV_VENV)/.installed: requirements-checkov.lock
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --require-hashes --no-deps -r requirements-checkov.lock
	touch $@

# Every package, direct or indirect, comes from a lock, pinned with its hashes: a release
# of an indirect dependency cannot change what is installed. requirements.lock is what
# runs kvdr (the container image and a host install use it); requirements-dev.lock adds
# the test tools, for `make install`. kvdr itself goes in without dependencies and
# without build isolation, so its build backend is the locked setuptools too. `make
# lock` regenerates the locks after a pin in pyproject.toml changes (a test checks that
# they agree).
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

PIP_TOOLS := pip-tools==7.5.2
LOCK_TOOL := $(VENV)-lock/bin/pip-compile
COMPILE := $(LOCK_TOOL) --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --no-header
# The runtime lock takes the same versions as the dev lock (-c): one tree, tested.
lock:
	test -x $(LOCK_TOOL) || { $(PYTHON) -m venv $(VENV)-lock && \
	  $(VENV)-lock/bin/python -m pip install --quiet '$(PIP_TOOLS)'; }
	$(COMPILE) --extra test --all-build-deps --output-file requirements-dev.lock pyproject.toml
	$(COMPILE) --all-build-deps -c requirements-dev.lock --output-file requirements.lock pyproject.toml
	printf 'checkov==%s\n' "$$(sed -n 's/.*"checkov==\([^"]*\)".*/\1/p' pyproject.toml)" > $(VENV)-lock/checkov.in
	$(COMPILE) --output-file requirements-checkov.lock $(VENV)-lock/checkov.in

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(BIN)/kvdr up

# The whole suite: lint, types, the default tests, then the slow ones.
test: install install-browser install-prometheus install-checkov
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m "not slow"
	$(BIN)/python -m pytest -m slow || test $$? -eq 5

test-fast: install
	$(BIN)/python -m pytest -m "not slow" -x

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

bench-full: install
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) $(VENV)-lock node_modules .kvdr .pytest_cache .mypy_cache .ruff_cache
