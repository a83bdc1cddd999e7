"""Runnable benchmarks; each writes JSON to benchmarks/results/."""
