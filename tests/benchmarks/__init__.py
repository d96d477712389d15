"""Benchmarks: scripts that print their figures against a baseline measured in the same run.

Run them as modules (`python -m tests.benchmarks.dispatch_log --help`); pytest does not collect
them. Results and the commands that reproduce them are in docs/BENCHMARKS.md.
"""
