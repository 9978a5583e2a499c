"""One builder compiles any cohort declaration to Spark: events -> per-person aggregates -> population.

Every criterion becomes events `(person_id, criterion, kind, event_date)` of its table, all the
criteria over one table in one scan of it; the tables' events are unioned and aggregated per person
in ONE groupBy (conditional aggregates), then joined onto pseudonymised/person, filtered by the population and extended with
the declared variables. Nothing is collected to the driver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from linkage import schemas, sources
from linkage.cohorts.codelists import Codelist, load_codelist, normalise_code
from linkage.cohorts.contracts import PERSON_COLUMNS, person_contract, variable_types
from linkage.cohorts.declaration import Condition, Criterion, Declaration, Window, parse_offset
from linkage.cohorts.disclosure import TOTAL_CATEGORY, apply_disclosure_control, with_totals
from linkage.config import CohortsConfig
from linkage.demographics import (
    PERSON_AGE_BAND_STARTS,
    age_at,
    age_band,
    birth_date,
    imd_quintile,
    or_unknown,
)
from linkage.errors import ConfigError
from linkage.lake import read_table
from linkage.schemas import TableContract

EVENT = "event"
ENDING = "ending"


@dataclass(frozen=True)
class CompiledCriterion:
    name: str
    criterion: Criterion
    codelist: Codelist | None
    ending: Codelist | None


def compile_criteria(declaration: Declaration, codelists_dir: str) -> list[CompiledCriterion]:
    """Check every column against the table contracts and load the codelists (errors name the cohort)."""
    compiled = []
    for name, criterion in declaration.criteria.items():
        contract = sources.source_of_table(criterion.table).pseudonymised_activity
        types = {column.name: column.type for column in contract.columns}
        used = [
            criterion.resolved_date_column,
            *(criterion.resolved_code_columns or [] if criterion.codelist else []),
            *criterion.where,
        ]
        unknown = [column for column in used if column not in types]
        if unknown:
            # No quotes: the job's error line redacts quoted text, and these are configuration names.
            raise ConfigError(
                f"cohort {declaration.name}, criterion {name}: table {criterion.table} has no "
                f"column(s) {', '.join(unknown)}"
            )
        if types[criterion.resolved_date_column] != "date":
            raise ConfigError(
                f"cohort {declaration.name}, criterion {name}: {criterion.resolved_date_column} is not a date"
            )
        try:
            codelist = load_codelist(codelists_dir, criterion.codelist) if criterion.codelist else None
            ending = (
                load_codelist(codelists_dir, criterion.ending_codelist) if criterion.ending_codelist else None
            )
        except ConfigError as error:
            raise ConfigError(f"cohort {declaration.name}, criterion {name}: {error}") from None
        compiled.append(CompiledCriterion(name, criterion, codelist, ending))
    return compiled


# ------------------------------------------------------------------------------------------
# Events


def shifted(index_date: Column, offset: str) -> Column:
    amount, unit = parse_offset(offset)
    if unit == "day":
        return F.date_add(index_date, amount)
    return F.add_months(index_date, amount * (12 if unit == "year" else 1))


def in_window(event_date: Column, window: Window, index_date: Column) -> Column:
    """Event date after the window's start and on or before its end; undated events never count."""
    inside = event_date.isNotNull() & (event_date <= shifted(index_date, window.end))
    return inside & (event_date > shifted(index_date, window.start)) if window.start else inside


def normalised_code_column(name: str) -> str:
    return f"__code_{name}"


def with_normalised_codes(df: DataFrame, contract: TableContract, columns: set[str]) -> DataFrame:
    """The code columns passed through `normalise_code` once, as `__code_<column>`: every codelist of every
    criterion over the table then compares plain columns (array columns element by element)."""
    types = {column.name: column.type for column in contract.columns}
    return df.withColumns(
        {
            normalised_code_column(name): F.transform(F.col(name), normalise_code)
            if types[name].startswith("array")
            else normalise_code(F.col(name))
            for name in sorted(columns)
        }
    )


def code_matches(contract: TableContract, columns: list[str], codelist: Codelist) -> Column:
    """The codelist matched on any of the columns (normalised by `with_normalised_codes`); array columns
    (secondary diagnoses) on any element."""
    types = {column.name: column.type for column in contract.columns}
    matches = [
        F.exists(F.col(normalised_code_column(name)), codelist.matches_normalised)
        if types[name].startswith("array")
        else codelist.matches_normalised(F.col(normalised_code_column(name)))
        for name in columns
    ]
    return F.coalesce(
        reduce(lambda a, b: F.coalesce(a, F.lit(False)) | F.coalesce(b, F.lit(False)), matches), F.lit(False)
    )


def where_matches(where: dict[str, list]) -> Column:
    conditions = [F.col(column).isin(values) for column, values in where.items()]
    return F.coalesce(reduce(lambda a, b: a & b, conditions, F.lit(True)), F.lit(False))


def input_tables() -> tuple[TableContract, ...]:
    """The tables cohorts read: the person table and every source's pseudonymised activity table."""
    return sources.pseudonymised_tables()


def read_inputs(
    spark: SparkSession, lake: str, versions: Mapping[str, int] | None = None
) -> dict[str, DataFrame]:
    """The pseudonymised tables by name (lazy Delta reads), at the pinned `zone/table` versions when given."""
    versions = versions or {}
    return {
        contract.name: read_table(
            spark, lake, contract, version=versions.get(f"{contract.zone}/{contract.name}")
        )
        for contract in input_tables()
    }


def criterion_kinds(
    compiled: CompiledCriterion, contract: TableContract, index_date: date
) -> list[tuple[str, Column]]:
    """(kind, condition) of the criterion's events and, with an ending codelist, of its ending codes."""
    criterion = compiled.criterion
    event_date = F.col(criterion.resolved_date_column)
    base = where_matches(criterion.where) & in_window(event_date, criterion.window, F.lit(index_date))
    if compiled.codelist is None:
        return [(EVENT, base)]
    columns = criterion.resolved_code_columns or []
    kinds = [(EVENT, base & code_matches(contract, columns, compiled.codelist))]
    if compiled.ending is not None:
        kinds.append((ENDING, base & code_matches(contract, columns, compiled.ending)))
    return kinds


def table_events(
    table_df: DataFrame, table: str, items: list[CompiledCriterion], index_date: date
) -> DataFrame:
    """(person_id, criterion, kind, event_date) of every criterion over one table, in one scan of it.

    A row gives one event per (criterion, kind) it matches. A filtered copy of the table per criterion and kind
    read and normalised the table once each: four times for asthma's GP criteria.
    """
    contract = sources.source_of_table(table).pseudonymised_activity
    code_columns = {
        name
        for item in items
        if item.codelist is not None
        for name in item.criterion.resolved_code_columns or []
    }
    tags = [
        F.when(
            condition,
            F.struct(
                F.lit(item.name).alias("criterion"),
                F.lit(kind).alias("kind"),
                F.col(item.criterion.resolved_date_column).alias("event_date"),
            ),
        )
        for item in items
        for kind, condition in criterion_kinds(item, contract, index_date)
    ]
    # Tags built in a projection of their own, where Spark evaluates each shared subexpression once; explode
    # drops the rows that matched nothing.
    return (
        with_normalised_codes(table_df, contract, code_columns)
        .select("person_id", F.array_compact(F.array(*tags)).alias("events"))
        .select("person_id", F.explode("events").alias("event"))
        .select("person_id", "event.criterion", "event.kind", "event.event_date")
    )


def cohort_events(
    tables: Mapping[str, DataFrame], compiled: list[CompiledCriterion], index_date: date
) -> DataFrame:
    """(person_id, criterion, kind, event_date) of all of a cohort's criteria: one scan per table they read."""
    by_table: dict[str, list[CompiledCriterion]] = {}
    for item in compiled:
        by_table.setdefault(item.criterion.table, []).append(item)
    return reduce(
        DataFrame.unionByName,
        [table_events(tables[table], table, items, index_date) for table, items in by_table.items()],
    )


def person_aggregates(events_df: DataFrame, compiled: list[CompiledCriterion]) -> DataFrame:
    """One row per person with `<criterion>__first/__last/__count/__ended/__nth` columns (one shuffle)."""
    aggregates = []
    for item in compiled:
        is_event = (F.col("criterion") == item.name) & (F.col("kind") == EVENT)
        dated = F.when(is_event, F.col("event_date"))
        aggregates += [
            F.min(dated).alias(f"{item.name}__first"),
            F.max(dated).alias(f"{item.name}__last"),
            F.count(dated).alias(f"{item.name}__count"),
        ]
        if item.ending is not None:
            is_ending = (F.col("criterion") == item.name) & (F.col("kind") == ENDING)
            aggregates.append(F.max(F.when(is_ending, F.col("event_date"))).alias(f"{item.name}__ended"))
        if item.criterion.aggregation == "nth":
            # n-th distinct date: the same dose recorded twice on one day is one dose.
            distinct_dates = F.array_sort(F.collect_set(dated))
            aggregates.append(
                F.try_element_at(distinct_dates, F.lit(item.criterion.n)).alias(f"{item.name}__nth")
            )
    return events_df.groupBy("person_id").agg(*aggregates)


def is_met(item: CompiledCriterion) -> Column:
    """Has a matching event and, with ended_by/resolved_by, no ending code after the latest event.

    QOF's rule: a resolved code on the same day as the latest diagnosis does not remove it.
    """
    has_event = F.coalesce(F.col(f"{item.name}__count"), F.lit(0)) > 0
    if item.criterion.aggregation == "nth":
        has_event = F.col(f"{item.name}__nth").isNotNull()  # a second dose needs two dates, not one event
    if item.ending is None:
        return has_event
    ended = F.col(f"{item.name}__ended")
    return has_event & (ended.isNull() | (ended <= F.col(f"{item.name}__last")))


def criterion_date(item: CompiledCriterion) -> Column:
    """The criterion's date (first/last/nth by its aggregation; first for count/exists), null when not met."""
    suffix = {"last": "last", "nth": "nth"}.get(item.criterion.aggregation, "first")
    return F.when(F.col(f"{item.name}__met"), F.col(f"{item.name}__{suffix}"))


def criterion_value(item: CompiledCriterion) -> Column:
    aggregation = item.criterion.aggregation
    if aggregation == "exists":
        return F.col(f"{item.name}__met")
    if aggregation == "count":
        return F.coalesce(F.col(f"{item.name}__count"), F.lit(0)).cast("int")
    return criterion_date(item)


# ------------------------------------------------------------------------------------------
# Person, population, variables


def person_birth() -> Column:
    """The person's birth taken as the 1st of the birth month (only year and month are released; a birthday
    in the index month counts as passed), July when only the year is known."""
    return birth_date(F.col("year_of_birth"), F.col("month_of_birth"))


def condition_column(condition: Condition | str) -> Column:
    if isinstance(condition, str):
        return F.col(f"{condition}__met")
    if condition.not_ is not None:
        return ~condition_column(condition.not_)
    parts = [condition_column(part) for part in (condition.all or condition.any or [])]
    if not parts:
        return F.lit(condition.all is not None)
    return reduce((lambda a, b: a & b) if condition.all is not None else (lambda a, b: a | b), parts)


def with_variables(
    df: DataFrame, declaration: Declaration, compiled: dict[str, CompiledCriterion], index_date: date
) -> DataFrame:
    """Add the declared variables in order; a name refers to a criterion or an earlier variable."""

    def as_date(name: str) -> Column:
        return criterion_date(compiled[name]) if name in compiled else F.col(name)

    for name, variable in declaration.variables.items():
        if variable.value_of:
            ref = variable.value_of
            column = criterion_value(compiled[ref]) if ref in compiled else F.col(ref)
        elif variable.has:
            column = F.col(f"{variable.has}__met")
        elif variable.earliest_of:
            column = (
                F.least(*[as_date(ref) for ref in variable.earliest_of])
                if len(variable.earliest_of) > 1
                else as_date(variable.earliest_of[0])
            )
        elif variable.latest_of:
            column = (
                F.greatest(*[as_date(ref) for ref in variable.latest_of])
                if len(variable.latest_of) > 1
                else as_date(variable.latest_of[0])
            )
        elif variable.days_between:
            start, end = (as_date(ref) for ref in variable.days_between)
            days = F.datediff(end, start)
            column = days <= variable.at_most if variable.at_most is not None else days
        else:
            # The flag is null until the child has reached the age, so coverage is over those old enough.
            birthday = F.add_months(person_birth(), 12 * (variable.years or 0))
            given = as_date(variable.by_age)
            column = F.when(birthday <= F.lit(index_date), F.coalesce(given < birthday, F.lit(False)))
        df = df.withColumn(name, column)
    return df


def identified_in(compiled: list[CompiledCriterion]) -> Column:
    found_in = [F.when(F.col(f"{item.name}__met"), F.lit(item.criterion.source)) for item in compiled]
    return (
        F.array_sort(F.array_distinct(F.array_compact(F.array(*found_in))))
        if found_in
        else F.array().cast("array<string>")
    )


def build_cohort(
    tables: Mapping[str, DataFrame],
    declaration: Declaration,
    config: CohortsConfig,
    compiled: list[CompiledCriterion] | None = None,
) -> DataFrame:
    """The person-level cohort (contract `person_contract(declaration)` minus run_id) from the named tables.

    `compiled`: the declaration's criteria as `compile_criteria` returned them, when the caller has them
    already (a declaration is compiled once per run); else compiled here.
    """
    index_date = declaration.index_date or config.index_date
    if compiled is None:
        compiled = compile_criteria(declaration, config.codelists)
    by_name = {item.name: item for item in compiled}
    events_df = cohort_events(tables, compiled, index_date)
    aggregates_df = person_aggregates(events_df, compiled)
    person_df = tables[schemas.PERSON_TABLE_NAME].select(
        "person_id", "year_of_birth", "month_of_birth", "sex", "ethnic_group", "imd_decile"
    )
    joined_df = person_df.join(aggregates_df, "person_id", how="left")
    for item in compiled:
        joined_df = joined_df.withColumn(f"{item.name}__met", is_met(item))
    age = age_at(person_birth(), F.lit(index_date))
    band_starts = PERSON_AGE_BAND_STARTS if config.age_band_starts is None else config.age_band_starts
    population = declaration.population
    keep = condition_column(population.condition) if population.condition else F.lit(True)
    if population.age and population.age.min is not None:
        keep = keep & (age >= population.age.min)
    if population.age and population.age.max is not None:
        keep = keep & (age <= population.age.max)
    cohort_df = (
        joined_df.where(F.coalesce(keep, F.lit(False)))
        .withColumn("index_date", F.lit(index_date))
        .withColumn("age_at_index", age)
        .withColumn("age_band", age_band(F.col("age_at_index"), band_starts))
        .withColumn("imd_quintile", imd_quintile(F.col("imd_decile")))
        .withColumn("identified_in", identified_in(compiled))
    )
    cohort_df = with_variables(cohort_df, declaration, by_name, index_date)
    columns = [name for name, _, _ in PERSON_COLUMNS] + list(variable_types(declaration))
    return cohort_df.select(*columns)


# ------------------------------------------------------------------------------------------
# Summary


def summary_counts(cohort_df: DataFrame, declaration: Declaration) -> DataFrame:
    """(breakdown, category, count) of persons, with totals from the unrounded counts (before control)."""
    flags = [name for name, kind in variable_types(declaration).items() if kind == "boolean"]

    def cell(breakdown: str, category: Column) -> Column:
        return F.struct(F.lit(breakdown).alias("breakdown"), category.cast("string").alias("category"))

    partitions = [
        cell(name, or_unknown(F.col(name))) for name in ("age_band", "sex", "ethnic_group", "imd_quintile")
    ]
    partitions += [
        cell(name, F.when(F.col(name), "true").when(~F.col(name), "false").otherwise("not applicable"))
        for name in flags
    ]
    source_cells = F.transform(
        F.when(F.size("identified_in") > 0, F.col("identified_in")).otherwise(F.array(F.lit("none"))),
        lambda source: cell("source", source),
    )
    cells_df = cohort_df.select(F.explode(F.concat(F.array(*partitions), source_cells)).alias("cell")).select(
        "cell.*"
    )
    counts_df = cells_df.groupBy("breakdown", "category").agg(F.count(F.lit(1)).alias("count"))
    partition_counts_df = with_totals(counts_df.where(F.col("breakdown") != "source"))
    # Sources overlap (a person can be in several), so their total is the cohort size, not a sum.
    source_total_df = cohort_df.agg(F.count(F.lit(1)).alias("count")).select(
        F.lit("source").alias("breakdown"), F.lit(TOTAL_CATEGORY).alias("category"), "count"
    )
    return partition_counts_df.unionByName(counts_df.where(F.col("breakdown") == "source")).unionByName(
        source_total_df
    )


def build_summary(cohort_df: DataFrame, declaration: Declaration, config: CohortsConfig) -> DataFrame:
    """The disclosure-controlled summary (summary contract minus run_id)."""
    index_date = declaration.index_date or config.index_date
    controlled_df = apply_disclosure_control(summary_counts(cohort_df, declaration), config.disclosure)
    return controlled_df.select(
        F.lit(declaration.name).alias("cohort"),
        F.lit(index_date).alias("index_date"),
        "breakdown",
        "category",
        "count",
        "is_suppressed",
    )


def cohort_contracts(declaration: Declaration) -> tuple[TableContract, TableContract]:
    from linkage.cohorts.contracts import summary_contract

    return person_contract(declaration), summary_contract(declaration)
