"""Standardisers: small Column -> Column functions, one module per kind of identifier.

Each function takes the raw column as a string and returns a standardised column; nulls in
give nulls out. The ingest job composes them; linkage and tests import them directly.
"""
