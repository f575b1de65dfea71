# The two commands of the quick start: `make demo` and `make test`.
#
# Installs come from the lock files in requirements/ (every package pinned, with hashes), through
# uv (itself pinned with hashes in requirements/bootstrap.lock and installed by pip). `make lock`
# refreshes them; README "Dependencies".
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# --compile-bytecode: every package's modules are compiled once, here. Without it, where PYTHONDONTWRITEBYTECODE
# is set (as on our machines and CI) no .pyc is ever written and every process compiles what it imports
# from source: each flow run, CLI call, Prefect or moto server of the suite spent 2-4 s of CPU on that,
# about a quarter of the suite's CPU.
UV_INSTALL := $(UV) pip install --quiet --compile-bytecode --python $(PY)
# pytest-xdist workers. The suite mostly waits on servers (Prefect, moto, uvicorn), so more workers
# than cores pays (3 measured as fast as 4, with a fifth less CPU); each worker starts its own
# Prefect and moto servers (tests/conftest.py).
TEST_WORKERS ?= 3

.PHONY: demo test lint typecheck install install-dev bench clean browser lock audit smoke

$(UV):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements/bootstrap.lock

# The product and the embedded sandbox (what `make demo` needs).
$(VENV)/.installed: $(UV) pyproject.toml setup.py keyresponse/engines/_scan.c requirements/sandbox.lock
	$(UV_INSTALL) --require-hashes -r requirements/sandbox.lock
	$(UV_INSTALL) --no-deps --reinstall-package keyresponse -e .
	@# bytecode now: where PYTHONDONTWRITEBYTECODE is set, every command would compile our modules again
	$(PY) -m compileall -q keyresponse flows tasks >/dev/null
	touch $@

# ... and the test tools (what `make test` needs).
$(VENV)/.installed-dev: $(VENV)/.installed requirements/dev.lock
	$(UV_INSTALL) --require-hashes -r requirements/dev.lock
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
# mypy --strict (`make typecheck`) runs beside the suite, which mostly waits on servers; either failing fails.
test: lint browser
	@echo "$(PY) -m pytest -n $(TEST_WORKERS) --durations=15   (and mypy --strict beside it)"
	@$(VENV)/bin/mypy >$(VENV)/mypy.log 2>&1 & mypy=$$!; \
	$(PY) -m pytest -n $(TEST_WORKERS) --durations=15; status=$$?; \
	wait $$mypy; typed=$$?; echo "mypy --strict: $$(tail -1 $(VENV)/mypy.log)"; \
	if [ $$typed -ne 0 ]; then cat $(VENV)/mypy.log; fi; \
	[ $$status -eq 0 ] && [ $$typed -eq 0 ]

# Build the sdist and wheel, install the wheel (without the sandbox extra) into a fresh venv and run
# the commands a responder host runs, outside the source tree.
smoke: install-dev
	.ci/smoke-wheel

# Known vulnerabilities in the locked dependencies (pip-audit); says what it could not check.
audit: install-dev
	$(PY) .ci/audit.py requirements/dev.lock

# Refresh the lock files from pyproject.toml and requirements/bootstrap.in (needs PyPI). dev.lock first:
# the others are kept to its versions.
lock: $(UV)
	$(UV) pip compile requirements/bootstrap.in --quiet --python-version 3.11 --generate-hashes -o requirements/bootstrap.lock
	$(UV) pip compile pyproject.toml --quiet --python-version 3.11 --generate-hashes --extra dev -o requirements/dev.lock
	$(UV) pip compile pyproject.toml --quiet --python-version 3.11 --generate-hashes --extra sandbox \
	  -c requirements/dev.lock -o requirements/sandbox.lock
	$(UV) pip compile pyproject.toml --quiet --python-version 3.11 --generate-hashes \
	  -c requirements/dev.lock -o requirements/runtime.lock

bench: install-dev
	$(PY) bench/simulate.py

clean:
	rm -rf $(VENV) .keyresponse .pytest_cache .ruff_cache .mypy_cache build dist
