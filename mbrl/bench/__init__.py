"""Benchmarks: speed of the rollout engine and planners (``mbrl bench speed``)."""
