# Everything bootstraps a virtualenv from pyproject.toml on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint typecheck pytest journal-tools demo bench soak package-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

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

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
