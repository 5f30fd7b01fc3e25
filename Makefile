# kvdr developer entry points. `make run` is the main job, `make test` the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-browser run test test-fast lint lock bench clean

install: $(STAMP) node_modules/.package-lock.json

# The dashboard test drives Debian's headless Chromium; install it where missing.
install-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the dashboard test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Every package, direct or indirect, comes from requirements.lock, pinned with its
# hashes: a release of an indirect dependency cannot change what is installed. kvdr
# itself goes in without dependencies and without build isolation, so its build
# backend is the locked setuptools too. `make lock` regenerates the lock after a pin
# in pyproject.toml changes (a test checks that the two agree).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

PIP_TOOLS := pip-tools==7.5.2
lock:
	test -x $(VENV)-lock/bin/pip-compile || { $(PYTHON) -m venv $(VENV)-lock && \
	  $(VENV)-lock/bin/python -m pip install --quiet '$(PIP_TOOLS)'; }
	$(VENV)-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --extra test --all-build-deps --no-emit-index-url --no-emit-find-links --no-header \
	  --output-file requirements.lock pyproject.toml

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(BIN)/kvdr up

# The whole suite: lint, types, the default tests, then the slow ones.
test: install install-browser
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

clean:
	rm -rf $(VENV) $(VENV)-lock node_modules .kvdr .pytest_cache .mypy_cache .ruff_cache
