"""Benchmarks: hot paths measured beside the reference implementation in the same run."""
