"""Clerical review: a small local web app in which the linkage team decides record pairs.

`store` reads the work queues and the records behind them from the lake (Spark) and appends
decisions to restricted/review_decisions; `evidence` recomputes the model's evidence for one
pair (Splink on DuckDB over the two records); `app` is the Flask app; `server` serves it on
loopback behind a per-start access token. `python -m jobs.review` starts it.
"""
