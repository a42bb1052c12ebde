"""Benchmarks: `python -m bench` runs every bench_*.py and prints their tables."""
