"""A registered Spark model in DuckDB's SQL dialect: for replaying it with Splink on DuckDB.

The review app scores one pair at a time with it, and the benches replay a whole model beside
the Spark run. m, u, the prior and term frequencies are unchanged; only SQL text is translated.
"""

from __future__ import annotations

import copy
import re

import sqlglot


def spark_sql_to_duckdb(sql: str) -> str:
    """One Splink condition from Spark SQL to DuckDB (sqlglot is Splink's own SQL translator)."""
    if sql.strip().upper() == "ELSE":
        return sql
    translated = sqlglot.transpile(sql, read="spark", write="duckdb")[0]
    # Splink's Spark jar names it jaro_winkler; DuckDB's built-in is jaro_winkler_similarity.
    return re.sub(r"\bJARO_WINKLER\(", "jaro_winkler_similarity(", translated, flags=re.IGNORECASE)


def model_for_duckdb(model: dict) -> dict:
    """The trained model (m, u, prior, term frequencies unchanged) with its SQL in DuckDB's dialect."""
    converted = copy.deepcopy(model)
    converted["sql_dialect"] = "duckdb"
    for comparison in converted["comparisons"]:
        for level in comparison["comparison_levels"]:
            level["sql_condition"] = spark_sql_to_duckdb(level["sql_condition"])
    for rule in converted.get("blocking_rules_to_generate_predictions", []):
        rule["blocking_rule"] = spark_sql_to_duckdb(rule["blocking_rule"])
        rule["sql_dialect"] = "duckdb"
    return converted
