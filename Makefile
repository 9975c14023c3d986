# The README's two commands:
#   make run    set up .venv, migrate, seed on first run, start Redis + worker + web
#   make test   set up .venv (with test tools and Chromium), run the whole suite
# Both are quick once set up: pip runs again only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per install flavour; each is older than pyproject.toml when a
# dependency changed, which makes pip run again.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
CATALOGS := $(wildcard portal/translations/*/LC_MESSAGES/*.po)
COMPILED := $(CATALOGS:.po=.mo)
CHROMIUM := /usr/bin/chromium
PYTEST_ARGS ?=

.PHONY: run test lint setup chromium

run: $(RUN_STAMP) $(COMPILED)
	$(BIN)/python -m portal.launcher

test: $(TEST_STAMP) $(COMPILED) chromium
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

setup: $(TEST_STAMP) $(COMPILED)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "Roleta needs Python 3.11 or newer; try: make PYTHON=python3.11 ..."; \
	  exit 1; }
	@$(PYTHON) -m venv $(VENV) || { \
	  rm -rf $(VENV); \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing python3-venv (Debian/Ubuntu ship venv separately)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv \
	      || { apt-get update && DEBIAN_FRONTEND=noninteractive \
	           apt-get install -y python3-venv; }; \
	    $(PYTHON) -m venv $(VENV); \
	  else \
	    echo "Could not create $(VENV): install python3-venv (apt-get install python3-venv)"; \
	    exit 1; \
	  fi; }

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

# The test extras include everything `run` needs, so they satisfy both stamps.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@ $(RUN_STAMP)

# Translations: compiled only when catalogs exist and changed.
%.mo: %.po | $(RUN_STAMP)
	$(BIN)/pybabel compile --statistics -i $< -o $@

# Browser tests drive Debian's Chromium; as root we install it when missing.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "$(CHROMIUM) is missing (apt-get install chromium as root); browser tests will be skipped"; \
	  fi; \
	fi
