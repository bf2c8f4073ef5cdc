# The two README commands: `make run` (install + start a local hub) and `make test` (install + every check).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Reinstall whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DATA_DIR ?= .hub-data

.PHONY: install run devnet test lint protos bench bench-network bench-blobs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# py-libp2p pulls in trio-typing, whose stale trio-stubs would shadow trio's own (current) inline
	@# types for mypy. Nothing imports them at run time.
	rm -rf $(VENV)/lib/python*/site-packages/trio-stubs
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Farcaster's own JS client, for the wire-compatibility test (tests/system/test_farcaster_client_interop.py).
INTEROP_STAMP := tests/interop/node_modules/.installed
$(INTEROP_STAMP): tests/interop/package-lock.json
	npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
	touch $@

run: install
	$(VENV)/bin/stateless node start --data-dir $(DATA_DIR) --network devnet

devnet: install
	$(VENV)/bin/stateless devnet up --nodes 3

lint: install
	$(PY) scripts/gen_protos.py --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint $(INTEROP_STAMP)
	$(VENV)/bin/pytest

protos: install
	$(PY) scripts/gen_protos.py

bench: install
	$(PY) bench/bench_ingest.py

bench-network: install
	$(PY) bench/bench_network.py

bench-blobs: install
	$(PY) bench/bench_blobs.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
