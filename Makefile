# aetrain: `make train` and `make test` work on a fresh machine (they set everything up first).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
DEBIAN_DATA = /usr/share/datasets/fashion-mnist
SUDO    = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS   ?=

.DEFAULT_GOAL := help
.PHONY: help setup data train smoke test test-fast test-jax bench bench-quick bench-scaling results lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) data ## virtualenv + aetrain (editable, with dev tools) + Fashion-MNIST

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

data: ## Fashion-MNIST from Debian's dataset-fashion-mnist (skipped when already there)
	@if [ -f $(DEBIAN_DATA)/t10k-labels-idx1-ubyte.gz ]; then \
		echo "Fashion-MNIST: $(DEBIAN_DATA)"; \
	elif command -v apt-get >/dev/null; then \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "No apt-get here: aetrain will use the Keras cache/download, or set AETRAIN_DATA_DIR."; \
	fi

train: setup ## train the default model on all of Fashion-MNIST (extra overrides: ARGS="variant=vae")
	$(BIN)/aetrain $(ARGS)

smoke: setup ## a whole CLI run in seconds (trainer=smoke)
	$(BIN)/aetrain trainer=smoke $(ARGS)

test: setup ## the whole test suite, slow CLI tests included, on every core
	$(BIN)/pytest -q -n auto --dist worksteal

test-fast: setup ## the tests that take seconds (no real CLI trainings)
	$(BIN)/pytest -q -m "not slow"

test-jax: setup ## the tests that take seconds again with the test workers' Keras on JAX (CI runs it after make test)
	KERAS_BACKEND=jax $(BIN)/pytest -q -n auto --dist worksteal -m "not slow"

bench: setup ## the six seed presets against the seed's recipe, all of Fashion-MNIST (~20 min on 2 cores): bench/RESULTS.md
	$(BIN)/python -m bench $(ARGS)

bench-quick: setup ## the benchmark's CI-sized smoke run (1 epoch, 3,000 images): bench/RESULTS-quick.md
	$(BIN)/python -m bench --quick $(ARGS)

bench-scaling: setup ## conv throughput by slices and threads on this machine: bench/SCALING.md
	$(BIN)/python -m bench --scaling $(ARGS)

results: setup ## every preset + conv_vae + shallow, full data (~10 min on 2 cores): docs/RESULTS.md
	$(BIN)/python -m bench.results $(ARGS)

lint: setup ## ruff lint + format check
	$(BIN)/ruff check aetrain tests bench
	$(BIN)/ruff format --check aetrain tests bench

format: setup ## ruff autofix + format
	$(BIN)/ruff check --fix aetrain tests bench
	$(BIN)/ruff format aetrain tests bench

clean: ## remove the virtualenv and caches (keeps outputs/)
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
