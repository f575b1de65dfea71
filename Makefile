# The two commands of the quick start: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: demo test lint typecheck install install-dev bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/keyresponse demo

lint: install-dev
	$(VENV)/bin/ruff check .

typecheck: install-dev
	$(VENV)/bin/mypy

# pytest exits 5 when it collected no test; that is a failure here like any other non-zero code.
test: lint
	$(PY) -m pytest

bench: install-dev
	$(PY) bench/simulate.py

clean:
	rm -rf $(VENV) .keyresponse .pytest_cache .ruff_cache .mypy_cache
