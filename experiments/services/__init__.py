"""Writes: experiment lifecycle, assignment, bandit reallocation, analysis snapshots."""
