"""Delta tables under <lake>/<zone>/<table>: every write one transaction, stamped and documented.

A write is `CREATE OR REPLACE TABLE ... AS SELECT` on the table path: readers see the old
version or the new one, never a mix, and a failed write leaves the last good version in
place. The commit's userMetadata carries the run stamp (run id, config hash, code version),
the table description and column comments come from the table's contract in
`linkage.schemas`, and the DataFrame is checked against that contract before anything is
written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage.errors import LinkageError
from linkage.releases import journal
from linkage.schemas import TableContract
from linkage.tracking import RunContext


class ContractError(LinkageError):
    """A DataFrame does not match the table contract it is being written to."""


@dataclass(frozen=True)
class TableWrite:
    """What one write committed: the table's new version and the rows it holds (from the commit's own metrics)."""

    version: int
    rows: int


def table_path(lake: str, contract: TableContract) -> str:
    return f"{lake.rstrip('/')}/{contract.zone}/{contract.name}"


def conform(df: DataFrame, contract: TableContract) -> DataFrame:
    """Select the contract's columns in order, cast to its types, with its comments attached.

    Missing columns are an error (a bug in the code that built the frame); extra columns are
    an error too, so nothing identifiable slips into a table by accident.
    """
    present = set(df.columns)
    declared = [column.name for column in contract.columns]
    missing = [name for name in declared if name not in present]
    extra = sorted(present - set(declared))
    if missing or extra:
        raise ContractError(
            f"{contract.zone}/{contract.name}: columns differ from the contract "
            f"(missing {missing or 'none'}, unexpected {extra or 'none'})"
        )
    return df.select(
        *[
            F.col(column.name).cast(column.type).alias(column.name, metadata={"comment": column.comment})
            for column in contract.columns
        ]
    )


def write_table(df: DataFrame, lake: str, contract: TableContract, run: RunContext) -> TableWrite:
    """Replace the table in one Delta transaction; returns its new version and row count.

    Both come from the commit (its version and its numOutputRows metric), so callers need not read the
    table back to count it.
    """
    path = table_path(lake, contract)
    stamp = run.stamp()
    writer = (
        conform(df, contract)
        .writeTo(f"delta.`{path}`")
        .using("delta")
        .tableProperty("comment", contract.description)
        .tableProperty("linkage.run_id", stamp["run_id"])
        .tableProperty("linkage.config_hash", stamp["config_hash"])
        .tableProperty("linkage.code_version", stamp["code_version"])
        .option("userMetadata", json.dumps(stamp, sort_keys=True))
    )
    if contract.stats_columns:
        writer = writer.tableProperty("delta.dataSkippingStatsColumns", ",".join(contract.stats_columns))
    if contract.partition_by:
        writer = writer.partitionedBy(*[F.col(name) for name in contract.partition_by])
    writer.createOrReplace()
    written = last_write(df.sparkSession, path)
    journal.record(
        f"{contract.zone}/{contract.name}", written.version
    )  # the candidate release's table versions
    return written


def last_write(spark: SparkSession, path: str) -> TableWrite:
    """The latest commit of a table replaced by write_table: its version and the rows it wrote."""
    from delta.tables import DeltaTable

    commit = DeltaTable.forPath(spark, path).history(1).select("version", "operationMetrics").first()
    return TableWrite(version=int(commit["version"]), rows=int(commit["operationMetrics"]["numOutputRows"]))


def read_table(
    spark: SparkSession, lake: str, contract: TableContract, version: int | None = None
) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(table_path(lake, contract))


def table_exists(spark: SparkSession, lake: str, contract: TableContract) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, table_path(lake, contract))


def table_version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def table_versions(spark: SparkSession, lake: str, contracts: list[TableContract]) -> dict[str, int]:
    """Current version of each existing table: logged as run parameters (which inputs a run read)."""
    return {
        f"{c.zone}/{c.name}": table_version(spark, table_path(lake, c))
        for c in contracts
        if table_exists(spark, lake, c)
    }


def append_table(df: DataFrame, lake: str, contract: TableContract, metadata: dict[str, str]) -> int:
    """Append rows in one Delta transaction, creating the table on first use; returns the new version.

    For append-only tables (clerical decisions). Columns the contract gained after the table was
    created are added to it (mergeSchema); older rows read them as null.
    """
    path = table_path(lake, contract)
    rows = conform(df, contract)
    if table_exists(df.sparkSession, lake, contract):
        (
            rows.write.format("delta")
            .mode("append")
            .option("mergeSchema", "true")
            .option("userMetadata", json.dumps(metadata, sort_keys=True))
            .save(path)
        )
    else:
        (
            rows.writeTo(f"delta.`{path}`")
            .using("delta")
            .tableProperty("comment", contract.description)
            .option("userMetadata", json.dumps(metadata, sort_keys=True))
            .create()
        )
    return table_version(df.sparkSession, path)
