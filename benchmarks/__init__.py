"""Benchmark scripts (not tests): ``python -m benchmarks.NAME`` prints figures and ratios."""
