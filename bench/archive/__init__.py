"""The archive's benchmark, one module per measurement (entry point: bench.bench_archive)."""
