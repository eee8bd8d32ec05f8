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

.PHONY: install setup pipelock-image lint typecheck pytest test demo clean

$(BIN)/rbottle: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/rbottle

# Debian packages, a running dockerd, and the pinned images seeded without a registry.
setup:
	$(SUDO) bash tests/harness/setup.sh

# The pinned egress proxy image: pulled, or built with Go from pipelock's release source
# (PIPELOCK_SRC=path/to/pipelock-2.3.0.tar.gz, checked against the pinned sha256).
pipelock-image:
	$(SUDO) env $(if $(PIPELOCK_SRC),RB_HARNESS_PIPELOCK_SRC=$(abspath $(PIPELOCK_SRC))) bash tests/harness/pipelock-image.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: setup lint typecheck pytest

# The full plan of an agent, then `rbottle demo`: a real bottle probed from inside (egress,
# DLP, the git gate). It needs the pinned egress proxy image; where that cannot be had, a
# real sealed bottle probes what a hostile agent could reach instead, and says why.
PIPELOCK_IMAGE := $(shell sed -n 's/^PIPELOCK_IMAGE=//p' remotebottle/resources/pins.env)
demo: install setup
	cd examples && ANTHROPIC_API_KEY=not-needed-for-a-dry-run ../$(BIN)/rbottle start implementer --dry-run
	@if docker image inspect $(PIPELOCK_IMAGE) >/dev/null 2>&1; then \
		$(BIN)/rbottle demo; \
	else \
		echo "make demo: $(PIPELOCK_IMAGE) is not on the engine, so \`rbottle demo\` cannot run here;"; \
		echo "make demo: a sealed bottle (no egress at all) shows what a hostile agent can reach instead"; \
		cd examples && ../$(BIN)/rbottle start sealed --yes --cwd . -- sh sealed-probe.sh; \
	fi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
