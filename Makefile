# kvdr developer entry points. `make run` is the main job, `make test` the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-browser install-prometheus run test test-fast lint bench clean

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

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(BIN)/kvdr up

# The whole suite: lint, types, the default tests, then the slow ones.
test: install install-browser install-prometheus
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
	rm -rf $(VENV) node_modules .kvdr .pytest_cache .mypy_cache .ruff_cache
