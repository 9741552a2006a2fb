"""Benchmarks: `python -m benchmarks` runs every module listed in `benchmarks.__main__`."""
