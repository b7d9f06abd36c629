"""Benchmarks (`make bench`): each bench_*.py measures one area; run_all.py writes RESULTS.md."""
