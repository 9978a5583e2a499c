"""Published tables by name, without Spark: for analysts with Python but no JVM.

    from linkage.catalog import published_tables
    tables = published_tables("lake")                 # {"pseudonymised.person": TableRef(path, version), ...}
    person = tables["pseudonymised.person"]

    # pyarrow / pandas (read on one thread: deltalake's threaded read can abort Python at exit)
    df = person.read().to_pandas()
    # polars
    import polars as pl
    df = pl.read_delta(person.path, version=person.version)
    # DuckDB, over the Arrow data
    import duckdb
    arrow = person.read()
    duckdb.sql("SELECT age_band, count(*) FROM arrow GROUP BY 1").show()

`published_tables(lake, release="r0002-...")` opens an earlier release by its id. Only this
module, `linkage.releases.manifest` and `deltalake` are imported: no pyspark, no Java.
"""

from __future__ import annotations

from dataclasses import dataclass

from linkage.releases.manifest import ANALYST_ZONES, read_arrow, release_tables, table_uri


@dataclass(frozen=True)
class TableRef:
    path: str
    version: int

    def read(self):
        """The table at its release version as a pyarrow Table."""
        return read_arrow(self.path, self.version)


def published_tables(lake: str, release: str | None = None) -> dict[str, TableRef]:
    """`zone.table` -> (path, version) of each analyst-facing table of the release (default: published).

    Empty when nothing is published yet; raises ReleaseError for an unknown release id."""
    _, tables = release_tables(lake, release)
    return {
        table.replace("/", ".", 1): TableRef(table_uri(lake, table), version)
        for table, version in sorted(tables.items())
        if table.split("/", 1)[0] in ANALYST_ZONES
    }


def published_release(lake: str) -> str | None:
    """Id of the release analysts see now (None before the first publish)."""
    found, _ = release_tables(lake)
    return found
