"""Poster figures from the files under results/ (never from the W&B API).

`tables.py` reads the given runs' summary.json and metrics.jsonl into tidy pandas tables
(and writes CSV files atomically); `plots.py` draws them with seaborn; `poster.py` lays
the figures out on an A0 page.
"""
