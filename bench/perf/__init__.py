"""Benchmark scripts (not tests): ``python -m bench.perf.NAME`` prints figures and ratios."""
