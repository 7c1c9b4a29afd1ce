# The commands of the README: `make demo`, `make test` and `make bench`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
# `make bench` runs `python -m bench.NAME $(BENCH_ARGS)` for each NAME, in this order; every
# benchmark takes --quick for a short run: `make bench BENCH_ARGS=--quick`.
BENCHMARKS := bench_simulator bench_exporter bench_discovery bench_archive bench_archive_lag bench_analytics bench_traces
BENCH_ARGS ?=

.PHONY: demo test lint bench soak clean dashboards previews

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The `bench` extra (benchmark-only dependencies), installed before any benchmark starts.
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/armonik-observe demo

lint: $(STAMP)
	$(BIN)/ruff check armonik_observe tests bench
	$(BIN)/mypy armonik_observe bench

test: lint
	scripts/ensure-prometheus
	scripts/ensure-chromium
	$(BIN)/python -m pytest -q

# Every benchmark runs, even after one fails; make fails if any did.
bench: $(BENCH_STAMP)
	@status=0; for name in $(BENCHMARKS); do \
		echo "== python -m bench.$$name $(BENCH_ARGS)"; \
		$(BIN)/python -m bench.$$name $(BENCH_ARGS) || status=1; \
	done; exit $$status

# Regenerate dashboards/ (and the panel table of docs/dashboards.md); redraw the PNG previews.
dashboards: $(STAMP)
	$(BIN)/python -m armonik_observe.dashboards.generate

previews: $(STAMP) dashboards
	scripts/ensure-prometheus
	$(BIN)/python -m armonik_observe.dashboards.previews

# Half an hour of steady load: memory, descriptors and tasks flat (bench/soak.py).
soak: $(BENCH_STAMP)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
