"""Benchmarks: orchestration efficiency, per-cut overhead, database timings, scoring throughput.

Run them with `make bench` or `python -m bench --help`; figures go in docs/benchmarks.md.
Nothing here asserts a timing: the benchmarks print figures.
"""
