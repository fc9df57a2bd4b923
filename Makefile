# Everything bootstraps a virtualenv from pyproject.toml on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv test lint typecheck pytest journal-tools demo bench soak package-check package-upgrade-check clean \
	lock lock-upgrade minimums minimums-suite

# The venv gets exactly the pins of requirements/dev.lock (a constraint: pyproject.toml still
# says what is installed, the lock which version of it).
$(STAMP): pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/dev.lock -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The locks, written from pyproject.toml by uv's universal resolution (one file for Python
# 3.11-3.13 on every platform, markers where pins differ; no index URL in them):
# requirements/runtime.lock (the image, the .deb) and requirements/dev.lock (.[dev]: the venv,
# CI), whose runtime pins are runtime.lock's. `make lock` keeps every pin pyproject.toml still
# allows and adds what is new; `make lock-upgrade` moves every pin to the newest allowed.
# Both ask PyPI. tests/packaging/test_minimums.py fails when pyproject.toml and a lock disagree.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--custom-compile-command 'make lock' $(LOCK_FLAGS)

lock: | $(BIN)/uv
	$(UV_COMPILE) -o requirements/runtime.lock
	$(UV_COMPILE) --extra dev -c requirements/runtime.lock -o requirements/dev.lock

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

# uv alone, so that `make lock` works when pyproject.toml has moved past the lock and the
# venv cannot install.
$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements/dev.lock uv

# Every runtime dependency at its declared minimum, in a venv of its own: the agent's `check`
# and a `run --once` to the dev-server (also part of `make test`; asks PyPI unless uv's cache
# already has the wheels, and skips saying so when it can do neither).
minimums: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/packaging/test_minimums.py

# The wider search for a wrong lower bound (not part of make test; ~10 min here): the test
# suite, but the benchmarks', run by a venv holding every runtime dependency at its declared
# minimum (build/minimums-venv) and the newest dev tools. Asks PyPI unless uv's cache has them.
MIN_VENV := build/minimums-venv
minimums-suite: $(STAMP)
	rm -rf $(MIN_VENV)
	$(BIN)/uv venv --quiet --python $(BIN)/python $(MIN_VENV)
	$(BIN)/python -c 'from tests.packaging.test_minimums import minimums; \
	    print(*(f"{n}=={v}" for n, v in minimums().items()), sep="\n")' >$(MIN_VENV)/minimums.txt
	$(BIN)/uv pip install --quiet --python $(MIN_VENV)/bin/python \
	    -c $(MIN_VENV)/minimums.txt -e '.[dev]'
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider --ignore=tests/bench \
	    --ignore=tests/packaging/test_minimums.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check agent tests bench packaging
	$(BIN)/ruff format --check agent tests bench packaging

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) journal-tools
	$(BIN)/pytest -q

# The journald source's tests write real journal files with systemd-journal-remote (issue 17):
# installed when missing where apt-get is; elsewhere those tests skip, saying why.
journal-tools:
	@if [ -x /usr/lib/systemd/systemd-journal-remote ] || [ -x /lib/systemd/systemd-journal-remote ]; then :; \
	elif command -v apt-get >/dev/null; then \
	  apt-get install -y --no-install-recommends systemd-journal-remote >/dev/null 2>&1 || \
	  { apt-get update >/dev/null && apt-get install -y --no-install-recommends systemd-journal-remote; } || \
	  echo "journal-tools: installing systemd-journal-remote failed (root?); see the journald tests"; \
	else echo "journal-tools: no apt-get; the journald tests will skip"; fi

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/python -m agent.demo

# Benchmarks (issue 7): a table of MB/s, CPU-s/GB, RSS and latency; never part of `make test`.
bench: $(STAMP)
	$(BIN)/python -m bench

# The long reliability runs (10-minute outage, many chaos rounds); not part of `make test`.
soak: $(STAMP)
	$(BIN)/pytest -q -m soak -p no:cacheprovider tests/reliability

# Heavy packaging checks: wheel, .deb into a debootstrap chroot, systemd boot in nspawn, image.
package-check: $(STAMP)
	bash packaging/check-heavy.sh

# The .deb upgrade from N to N+1 inside a running nspawn machine (root; ~5 min with builds,
# after package-check made the Debian root): config, key, checkpoints and spool survive, the
# service restarts. OLD_REF=<git ref> packages N from an older commit.
package-upgrade-check: $(STAMP)
	bash packaging/check-upgrade.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
