"""Benchmarks run by `make bench` (`python bench/run.py`)."""
