"""Benchmarks: plain Python scripts that print one JSON document each (`make bench`)."""
