"""The simulator's benchmark, one module per measurement (entry point: bench.bench_simulator)."""
