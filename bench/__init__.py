"""Benchmarks. Performance goals live here, measured against a baseline in the same run."""
