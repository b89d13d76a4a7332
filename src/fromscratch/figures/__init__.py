"""Poster figures from the files under results/ (never from the W&B API).

`tables.py` reads every run's summary.json and metrics.jsonl into tidy pandas tables;
`plots.py` draws them with seaborn; `poster.py` lays the figures out on an A0 page.
"""
