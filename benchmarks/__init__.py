"""Benchmarks: headwater against what users would otherwise write.

Run with ``make bench`` (or ``python -m benchmarks [--quick]``); the runner writes
``benchmarks/RESULTS.md`` and prints the same tables. Speed is measured here, never
asserted in timed tests.
"""
