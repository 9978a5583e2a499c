"""The named checks a candidate release must pass before it is published.

Each audit reads the candidate's tables at their recorded versions and returns an `AuditResult`
holding only aggregate counts (never a value): they go to MLflow and to `<lake>/releases/audits`.
An audit that does not apply to this candidate (e.g. no ingest in a cohorts-only run) passes and
says why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, StringType

from linkage import sources
from linkage.config import AppConfig
from linkage.releases.manifest import ANALYST_ZONES, table_uri
from linkage.schemas import TableContract

PEOPLE_STD_TABLE = "restricted/people_std"
SPINE_TABLE = "restricted/person_spine"
PERSON_TABLE = "pseudonymised/person"
# Raw identifiers a published string must never equal. Single names are not scanned on their own:
# category values coincide with common surnames (ethnic group 'White', 'Black'); full names are.
IDENTIFIER_COLUMNS = ("nhs_number_raw", "nhs_number", "postcode_raw", "postcode_std", "date_of_birth_raw")
MIN_IDENTIFIER_LENGTH = 4
NOT_SCANNED = ("person_id", "run_id")  # HMAC hex and MLflow ids: no identifier has their shape


@dataclass(frozen=True)
class AuditResult:
    name: str
    passed: bool
    summary: str
    counts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditInputs:
    spark: SparkSession
    config: AppConfig
    candidate: dict[str, int]  # zone/table -> version of the candidate release
    previous: dict[str, int]  # the same for the release analysts see now ({} when none)
    written: dict[str, int]  # tables this run wrote

    def read(self, table: str, version: int | None = None) -> DataFrame:
        at = self.candidate[table] if version is None else version
        return (
            self.spark.read.format("delta")
            .option("versionAsOf", at)
            .load(table_uri(self.config.paths.lake, table))
        )

    def analyst_tables(self) -> list[str]:
        return sorted(t for t in self.candidate if t.split("/", 1)[0] in ANALYST_ZONES)


Audit = Callable[[AuditInputs], AuditResult]


def findings_summary(found: dict[str, int], clean: str, problem: str, unit: str = "") -> str:
    """One line for an audit's report: `clean` when nothing was found, else `problem` and each place with its
    count (names of tables and columns, never values)."""
    if not found:
        return clean
    return f"{problem} " + ", ".join(f"{place} ({n}{unit})" for place, n in sorted(found.items()))


def stage_metrics(inputs: AuditInputs, table: str) -> tuple[str | None, dict[str, float]]:
    """(run id, MLflow metrics) of the run that wrote the table's candidate version."""
    from mlflow.tracking import MlflowClient

    row = inputs.read(table).select("run_id").where(F.col("run_id").isNotNull()).limit(1).first()
    if row is None:
        return None, {}
    try:
        return row.run_id, dict(MlflowClient(inputs.config.tracking_uri).get_run(row.run_id).data.metrics)
    except Exception:  # noqa: BLE001 - a run id from another store: the audit reports it as missing
        return row.run_id, {}


# ------------------------------------------------------------------------------------------
# The audits


def ingest_reconciles(inputs: AuditInputs) -> AuditResult:
    """Per file: rows read = accepted + quarantined, from the counts the ingest run logged."""
    name = "ingest_reconciles"
    if PEOPLE_STD_TABLE not in inputs.written:
        return AuditResult(name, True, "not applicable: ingest did not run in this release")
    run_id, metrics = stage_metrics(inputs, PEOPLE_STD_TABLE)
    files = sorted(
        key.removesuffix(".read") for key in metrics if key.endswith(".read") and key != "ingest.rows_read"
    )
    if not files:
        return AuditResult(name, False, f"no per-file ingest counts in MLflow run {run_id}")
    unbalanced = [
        f
        for f in files
        if metrics[f"{f}.read"] != metrics.get(f"{f}.accepted", -1) + metrics.get(f"{f}.quarantined", -1)
    ]
    counts = {
        "files": len(files),
        "files_unbalanced": len(unbalanced),
        "rows_read": sum(metrics[f"{f}.read"] for f in files),
    }
    summary = (
        f"{len(files)} files reconcile"
        if not unbalanced
        else f"read != accepted + quarantined for {', '.join(f.removeprefix('ingest.') for f in unbalanced)}"
    )
    return AuditResult(name, not unbalanced, summary, counts)


def known_contracts(config: AppConfig) -> dict[str, TableContract]:
    """Every table's contract: the fixed zones' and each declared cohort's two tables."""
    from linkage.cohorts.builder import cohort_contracts
    from linkage.cohorts.declaration import declaration_files, load_declaration

    contracts = {f"{c.zone}/{c.name}": c for c in sources.all_tables()}
    try:
        files = declaration_files(config.cohorts.declarations)
    except Exception:  # noqa: BLE001 - no declarations folder: only the fixed contracts apply
        files = {}
    for path in files.values():
        try:
            for contract in cohort_contracts(load_declaration(path)):
                contracts[f"{contract.zone}/{contract.name}"] = contract
        except Exception:  # noqa: BLE001 - a broken declaration has no table to check (its cohort failed)
            continue
    return contracts


def schema_contracts(inputs: AuditInputs) -> AuditResult:
    """Each table written by this run has exactly its contract's columns and types, in order."""
    contracts = known_contracts(inputs.config)
    differing, unknown = [], []
    for table in sorted(inputs.written):
        contract = contracts.get(table)
        if contract is None:
            unknown.append(table)
            continue
        actual = [(f.name, f.dataType.simpleString()) for f in inputs.read(table).schema]
        declared = [(f.name, f.dataType.simpleString()) for f in contract.schema]
        if actual != declared:
            differing.append(table)
    problems = [
        *(f"{t} differs from its contract" for t in differing),
        *(f"{t} has no contract" for t in unknown),
    ]
    return AuditResult(
        "schema_contracts",
        not problems,
        "; ".join(problems) or f"{len(inputs.written)} tables match their contracts",
        {
            "tables_checked": len(inputs.written),
            "tables_differing": len(differing),
            "tables_without_contract": len(unknown),
        },
    )


def identifier_values(people_df: DataFrame) -> DataFrame:
    """Distinct normalised raw identifiers (value) of the run's input people."""
    # Every NHS number, postcode and date holds a digit: placeholders such as 'Unknown' (also a category
    # value) are not identifiers. A full name needs both parts.
    with_digit = [F.when(F.col(c).rlike("[0-9]"), F.col(c)) for c in IDENTIFIER_COLUMNS]
    full_name = F.when(
        (F.length(F.trim("forename_raw")) > 0) & (F.length(F.trim("surname_raw")) > 0),
        F.concat_ws(" ", F.trim("forename_raw"), F.trim("surname_raw")),
    )
    return (
        people_df.select(F.explode(F.array(*with_digit, full_name)).alias("value"))
        .select(F.upper(F.trim("value")).alias("value"))
        .where(F.length("value") >= MIN_IDENTIFIER_LENGTH)
        .distinct()
    )


def string_cells(df: DataFrame, table: str) -> DataFrame:
    """(table, column, value) for every string and array<string> cell of the table."""
    scalars = [f.name for f in df.schema if isinstance(f.dataType, StringType) and f.name not in NOT_SCANNED]
    arrays = [
        f.name
        for f in df.schema
        if isinstance(f.dataType, ArrayType) and isinstance(f.dataType.elementType, StringType)
    ]
    parts = []
    if scalars:
        cells = F.array(
            *[F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value")) for c in scalars]
        )
        parts.append(df.select(F.explode(cells).alias("cell")).select("cell.column", "cell.value"))
    parts += [df.select(F.lit(c).alias("column"), F.explode(c).alias("value")) for c in arrays]
    if not parts:
        return df.sparkSession.createDataFrame([], "table string, column string, value string")
    return (
        reduce(DataFrame.unionByName, parts)
        .where(F.col("value").isNotNull())
        .select(F.lit(table).alias("table"), "column", F.upper(F.trim("value")).alias("value"))
    )


def no_raw_identifiers(inputs: AuditInputs) -> AuditResult:
    """No string in the pseudonymised or cohort zones equals a raw identifier of the input (counts only)."""
    name = "no_raw_identifiers"
    if PEOPLE_STD_TABLE not in inputs.candidate:
        return AuditResult(name, True, "not applicable: no restricted/people_std to take identifiers from")
    identifiers = identifier_values(inputs.read(PEOPLE_STD_TABLE))
    cells = [string_cells(inputs.read(t), t) for t in inputs.analyst_tables()]
    if not cells:
        return AuditResult(name, True, "no analyst-facing tables")
    matches = (
        reduce(DataFrame.unionByName, cells)
        .distinct()
        .join(identifiers, "value", how="inner")
        .groupBy("table", "column")
        .count()
        .collect()
    )
    found = {f"{row['table']}.{row['column']}": int(row["count"]) for row in matches}
    summary = findings_summary(
        found, "no published string equals a raw identifier", "raw identifier values found in", " distinct"
    )
    return AuditResult(
        name,
        not found,
        summary,
        {
            "tables_scanned": len(cells),
            "columns_with_identifiers": len(found),
            "identifier_matches": sum(found.values()),
        },
    )


def disclosure_obeyed(inputs: AuditInputs) -> AuditResult:
    """Every cell of every cohort summary is suppressed (null) or a rounded count outside the small range."""
    policy = inputs.config.cohorts.disclosure
    summaries = [t for t in inputs.analyst_tables() if t.startswith("cohorts/") and t.endswith("_summary")]
    count = F.col("count")
    breaks = (count.isNull() != F.coalesce(F.col("is_suppressed"), F.lit(False))) | (
        count.isNotNull() & (count % policy.rounding_base != 0)
    )
    if policy.suppress_max > 0:
        breaks = breaks | count.between(policy.suppress_min, policy.suppress_max)
    bad = {t: inputs.read(t).where(breaks).count() for t in summaries}
    bad = {t: n for t, n in bad.items() if n}
    summary = findings_summary(
        bad, f"{len(summaries)} summaries obey the policy", "cells breaking the disclosure policy in"
    )
    return AuditResult(
        "disclosure_obeyed",
        not bad,
        summary,
        {"summaries_checked": len(summaries), "cells_breaking_policy": sum(bad.values())},
    )


def linkage_gates(inputs: AuditInputs) -> AuditResult:
    """Configured QA gates on the link run that wrote the candidate spine."""
    name = "linkage_gates"
    gates = inputs.config.releases.gates
    if SPINE_TABLE not in inputs.written:
        return AuditResult(name, True, "not applicable: link did not run in this release")
    run_id, metrics = stage_metrics(inputs, SPINE_TABLE)
    if "persons" not in metrics:
        return AuditResult(name, False, f"no link QA metrics in MLflow run {run_id}")
    previous_persons = (
        inputs.read(SPINE_TABLE, inputs.previous[SPINE_TABLE]).select("person_key").distinct().count()
        if SPINE_TABLE in inputs.previous
        else 0
    )
    linked = metrics.get("model.pairs_at_or_above_upper", 0.0)
    values: dict[str, float | None] = {
        "keys_merged_share": metrics.get("keys.merged", 0.0) / previous_persons if previous_persons else None,
        "keys_split_share": metrics.get("keys.split", 0.0) / previous_persons if previous_persons else None,
        "conflict_cluster_share": sum(v for k, v in metrics.items() if k.startswith("conflict_clusters."))
        / max(metrics["persons"], 1.0),
        "expected_false_match_rate": metrics.get("model.expected_false_matches", 0.0) / linked
        if linked
        else None,
        "precision": metrics.get("precision"),
    }
    limits = {
        "keys_merged_share": (gates.max_keys_merged_share, "max"),
        "keys_split_share": (gates.max_keys_split_share, "max"),
        "conflict_cluster_share": (gates.max_conflict_cluster_share, "max"),
        "expected_false_match_rate": (gates.max_expected_false_match_rate, "max"),
        "precision": (gates.min_precision, "min"),
    }
    failed = []
    for key, (limit, kind) in limits.items():
        value = values[key]
        if limit is None or value is None:
            continue
        if (kind == "max" and value > limit) or (kind == "min" and value < limit):
            failed.append(f"{key} {value:.4f} {'>' if kind == 'max' else '<'} {limit}")
    counts = {k: v for k, v in values.items() if v is not None}
    summary = "; ".join(failed) or "all configured linkage gates pass"
    return AuditResult(name, not failed, summary, counts)


def person_ids_join(inputs: AuditInputs) -> AuditResult:
    """Every person_id of every pseudonymised table is a person of pseudonymised/person (same release)."""
    name = "person_ids_join"
    tables = [t for t in inputs.analyst_tables() if t.startswith("pseudonymised/") and t != PERSON_TABLE]
    if not tables:
        return AuditResult(name, True, "not applicable: no pseudonymised activity tables")
    if PERSON_TABLE not in inputs.candidate:
        return AuditResult(name, False, f"{PERSON_TABLE} missing from the release")
    persons = inputs.read(PERSON_TABLE).select("person_id")
    orphans = {
        t: inputs.read(t).select("person_id").join(persons, "person_id", how="left_anti").count()
        for t in tables
    }
    bad = {t: n for t, n in orphans.items() if n}
    summary = findings_summary(
        bad, f"{len(tables)} tables join {PERSON_TABLE}", "rows whose person_id is not in person:"
    )
    return AuditResult(
        name, not bad, summary, {"tables_checked": len(tables), "orphan_rows": sum(orphans.values())}
    )


AUDITS: tuple[Audit, ...] = (
    ingest_reconciles,
    schema_contracts,
    no_raw_identifiers,
    disclosure_obeyed,
    linkage_gates,
    person_ids_join,
)


def run_audits(inputs: AuditInputs, audits: tuple[Audit, ...] = AUDITS) -> list[AuditResult]:
    """Every audit, even after one fails (the report lists them all); an audit that errors fails."""
    results = []
    for audit in audits:
        try:
            results.append(audit(inputs))
        except Exception as error:  # noqa: BLE001 - an audit that cannot run is a failed audit, not a crash
            from linkage.harness import first_line, redact

            results.append(
                AuditResult(
                    audit.__name__,
                    False,
                    f"could not run: {type(error).__name__}: {redact(first_line(error))}",
                )
            )
    return results


def as_report(results: list[AuditResult]) -> list[dict[str, Any]]:
    return [{"audit": r.name, "passed": r.passed, "summary": r.summary, "counts": r.counts} for r in results]
