# The two commands of the README: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/armonik-observe demo

lint: $(STAMP)
	$(BIN)/ruff check armonik_observe tests bench
	$(BIN)/mypy armonik_observe

test: lint
	scripts/ensure-prometheus
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.bench_simulator
	$(BIN)/python -m bench.bench_exporter
	$(BIN)/python -m bench.bench_archive
	$(BIN)/python -m bench.bench_archive_lag

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
