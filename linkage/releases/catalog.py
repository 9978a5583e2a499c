"""Spark names for a release: databases `pseudonymised` and `cohorts`, one view per table.

Each view is `SELECT * FROM delta.`<path>` VERSION AS OF <n>` with the version the release
records, so `SELECT ... FROM pseudonymised.person` reads exactly the published release even while
a later run writes newer versions. With the default in-memory catalog the views are made in the
session from the manifest (the catalog is the manifest, stored with the lake); with an external
Hive metastore (`releases.catalog: external` and the metastore in spark.conf) publish also writes
them there, where other teams' sessions find them.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from linkage.releases.manifest import ANALYST_ZONES, release_tables, table_uri


def register_views(spark: SparkSession, lake: str, tables: dict[str, int]) -> list[str]:
    """Create or replace one view per analyst-facing table and drop stale ones; returns the names."""
    names = []
    for zone in ANALYST_ZONES:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {zone}")
        wanted = {t.split("/", 1)[1]: v for t, v in tables.items() if t.split("/", 1)[0] == zone}
        for existing in spark.catalog.listTables(zone):
            if existing.tableType == "VIEW" and not existing.isTemporary and existing.name not in wanted:
                spark.sql(f"DROP VIEW IF EXISTS {zone}.`{existing.name}`")
        for name, version in sorted(wanted.items()):
            path = table_uri(lake, f"{zone}/{name}").replace("`", "``")
            spark.sql(
                f"CREATE OR REPLACE VIEW {zone}.`{name}` AS "
                f"SELECT * FROM delta.`{path}` VERSION AS OF {int(version)}"
            )
            names.append(f"{zone}.{name}")
    return names


def register_catalog(spark: SparkSession, lake: str, release_id: str | None = None) -> str | None:
    """Point the session's names at a release (default: the published one); returns its id, None if none."""
    found, tables = release_tables(lake, release_id)
    if found is not None:
        register_views(spark, lake, tables)
    return found
