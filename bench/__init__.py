"""Benchmarks: runnable scripts that print results as ratios against baselines and budgets.

`python -m bench` runs them all in quick mode; `python -m bench.<name>` runs one.
"""
