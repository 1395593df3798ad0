"""Seeded comparisons of methods: `python -m ssljax.compare` (see
__main__.py); `runs` plans, trains and reads back the runs, `stats` holds
the statistics across seeds, `report` writes the tables and plots."""
