"""The exporter's benchmark, one module per measurement (entry point: bench.bench_exporter)."""
