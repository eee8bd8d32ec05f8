# The two commands a newcomer needs (see README):
#   make demo   prepare everything (venv, engine, images) and run the main job locally
#   make test   prepare everything, then lint, type-check and run the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Extra CA certificates for image builds and bottles (TLS-inspecting proxies).
# Default: this machine's own trust bundle, where it has one.
export REMOTEBOTTLE_EXTRA_CA_CERTS ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)

.PHONY: install setup lint typecheck pytest test demo clean

$(BIN)/rbottle: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/rbottle

# Debian packages, a running dockerd, and the pinned images seeded without a registry.
setup:
	$(SUDO) bash tests/harness/setup.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: setup lint typecheck pytest

# Until `rbottle demo` lands: the full plan of an agent, then a real sealed bottle
# probing what a hostile agent could reach.
demo: install setup
	cd examples && ANTHROPIC_API_KEY=not-needed-for-a-dry-run ../$(BIN)/rbottle start implementer --dry-run
	cd examples && ../$(BIN)/rbottle start sealed --yes --cwd . -- sh sealed-probe.sh

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
