# The two commands of the quick start: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test lint typecheck install install-dev bench clean browser

$(VENV)/.installed: pyproject.toml setup.py keyresponse/engines/_scan.c
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -e .
	@# bytecode now: where PYTHONDONTWRITEBYTECODE is set, every command would compile our modules again
	$(PY) -m compileall -q keyresponse flows tasks >/dev/null
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

# Browser tests drive Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/keyresponse demo

lint: install-dev
	$(VENV)/bin/ruff check .

typecheck: install-dev
	$(VENV)/bin/mypy

# pytest exits 5 when it collected no test; that is a failure here like any other non-zero code.
test: lint browser
	$(PY) -m pytest

bench: install-dev
	$(PY) bench/simulate.py

clean:
	rm -rf $(VENV) .keyresponse .pytest_cache .ruff_cache .mypy_cache
