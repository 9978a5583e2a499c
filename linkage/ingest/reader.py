"""Read one raw file (CSV or Parquet) into canonical string columns, keeping each row's line number and raw text.

CSV is read as text so that every physical line is kept: the raw line goes to quarantine
as it was, and a row with the wrong number of fields is caught before parsing (Spark's CSV
reader would pad or cut it silently). Lines are numbered from the file's byte blocks, not
by a single-partition window, so a large file is numbered in parallel.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from linkage.errors import ConfigError, InputError

BOM = "\ufeff"
MAX_BLANK_LINES_BEFORE_HEADER = 100
# Longest record, in physical lines, that a quoted field with line breaks may span; an unclosed quote
# further apart is a malformed line, not the start of a record swallowing the file.
MAX_LINES_PER_RECORD = 100
MAX_ODD_QUOTE_LINES = 1_000_000  # line numbers collected to pair up quotes; beyond this, lines stay single
# A quoted CSV field, with "" as an escaped quote inside it (unrolled loop: no deep regex backtracking).
_QUOTED_FIELD = r'"[^"]*(?:""[^"]*)*"'


@dataclass(frozen=True)
class RawFile:
    """A located raw file: which source and role it has, its name in messages, where and what format."""

    source: str
    role: str  # "people" or "activity"
    name: str  # file name as named in quarantine and metrics, e.g. gp_patients.csv
    path: str
    format: str  # "csv" or "parquet"


@dataclass(frozen=True)
class FileLayout:
    """Where each canonical field is in a file: a header position / column name, or None when not supplied."""

    header: tuple[str, ...]
    positions: dict[str, int | None]
    header_line: int = 1  # physical line of a CSV header (blank lines may come before it)


def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


def path_exists(spark: SparkSession, path: str) -> bool:
    """Works for local folders and any Hadoop-compatible URI (HDFS, S3A, ABFS)."""
    fs, hadoop_path = _hadoop_fs(spark, path)
    return bool(fs.exists(hadoop_path))


def locate(spark: SparkSession, raw_dir: str, stem: str, source: str, role: str) -> RawFile:
    """Find `<raw_dir>/<stem>.csv` or `.parquet`; InputError naming the file when neither (or both) exist."""
    base = raw_dir.rstrip("/")
    found = [fmt for fmt in ("csv", "parquet") if path_exists(spark, f"{base}/{stem}.{fmt}")]
    if not found:
        raise InputError(f"{source} {role} file not found: {base}/{stem}.csv (or .parquet)")
    if len(found) > 1:
        raise InputError(
            f"{source} {role} file is ambiguous: both {stem}.csv and {stem}.parquet are in {base}"
        )
    fmt = found[0]
    return RawFile(source, role, f"{stem}.{fmt}", f"{base}/{stem}.{fmt}", fmt)


def read_header(spark: SparkSession, raw: RawFile) -> tuple[str, ...] | None:
    """Column names as in the file (BOM removed); None for a file with no header (empty or blank lines only)."""
    return read_header_at(spark, raw)[0]


def read_header_at(spark: SparkSession, raw: RawFile) -> tuple[tuple[str, ...] | None, int]:
    """(column names, physical line of the header): blank lines before the header are skipped, not
    taken for an empty file. Reads up to the header only."""
    if raw.format == "parquet":
        return tuple(spark.read.parquet(raw.path).columns), 0
    fs, hadoop_path = _hadoop_fs(spark, raw.path)
    jvm = spark.sparkContext._jvm
    stream = fs.open(hadoop_path)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        for line_number in range(1, MAX_BLANK_LINES_BEFORE_HEADER + 2):
            line = reader.readLine()
            if line is None:
                return None, 0
            if line.strip(BOM).strip():
                return tuple(next(csv.reader([line.lstrip(BOM)]))), line_number
    finally:
        stream.close()
    return None, 0


def resolve_layout(
    raw: RawFile,
    header: tuple[str, ...] | None,
    fields: tuple[str, ...],
    mapping: Mapping[str, str],
    header_line: int = 1,
) -> FileLayout:
    """Match each canonical field's site column name case-insensitively; InputError naming a missing column.

    A field mapped to an empty string is one this site does not supply: it reads as null.
    """
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(
            f"ingest.sources.{raw.source}.{raw.role}_columns: unknown fields {unknown} "
            f"(known: {list(fields)})"
        )
    if header is None:  # an empty file is valid: no rows, nothing to match
        return FileLayout((), {name: None for name in fields})
    lowered = [name.strip().lower() for name in header]
    positions: dict[str, int | None] = {}
    for name in fields:
        column = mapping.get(name, name)
        if column == "":
            positions[name] = None
            continue
        matches = [i for i, candidate in enumerate(lowered) if candidate == column.strip().lower()]
        if not matches:
            via = f" (mapped from field '{name}')" if column != name else ""
            raise InputError(f"{raw.name}: column '{column}'{via} not found in the file's header")
        if len(matches) > 1:
            raise InputError(f"{raw.name}: column '{column}' appears {len(matches)} times in the header")
        positions[name] = matches[0]
    return FileLayout(tuple(header), positions, header_line)


def missing_to_null(col: Column) -> Column:
    """Empty (or blank) strings and the literal NULL mean missing."""
    trimmed = F.trim(col)
    return F.when((trimmed != "") & (F.upper(trimmed) != "NULL"), col)


def number_lines(df: DataFrame, group: str, order: str) -> DataFrame:
    """Add `line_number` (1-based, file order) from a (group, order-within-group) pair, e.g. (file block, row id),
    where the orders of one group are consecutive integers (a block's row ids, a Parquet file's row indexes).

    Each group's offset is the row count of the groups before it less the group's first order: computed on
    the per-group counts (one row per file block, a handful whatever the file size) and broadcast back, so
    numbering a row is one addition. Ranking rows within their group instead (row_number) would shuffle and
    sort the whole file by group, which cost more than reading it.
    """
    before = Window.orderBy(group).rowsBetween(Window.unboundedPreceding, -1)
    offsets_df = (
        df.groupBy(group)
        .agg(F.count(F.lit(1)).alias("_rows"), F.min(order).alias("_first"))
        .select(
            group,
            (F.coalesce(F.sum("_rows").over(before), F.lit(0)) - F.col("_first") + 1).alias("_offset"),
        )
    )
    return (
        df.join(F.broadcast(offsets_df), group, how="inner")
        .withColumn("line_number", (F.col("_offset") + F.col(order)).cast("long"))
        .drop("_offset")
    )


def read_rows(spark: SparkSession, raw: RawFile, layout: FileLayout) -> DataFrame:
    """Rows as `line_number, raw_line, is_malformed`, one string column per canonical field, and
    `continuation_lines` (further physical lines of a record whose quoted field holds a line break).

    CSV line numbers are physical lines (the header's, usually 1, and a record's first); Parquet row
    numbers start at 1.
    """
    return read_files(spark, [(raw, layout)])[0]


def read_files(
    spark: SparkSession, files: list[tuple[RawFile, FileLayout]], find_line_breaks: bool = True
) -> list[DataFrame]:
    """read_rows of several files, in order, finding every CSV file's quoted line breaks in one Spark job
    (a job per file is a fixed cost of a second or more, paid eight times by every ingest).

    find_line_breaks=False skips that search and reads every physical line as a record: the first pass of
    ingest, which rereads only a file where one of those lines turns out to hold an odd number of quotes (such a
    line is always malformed when read alone; see `may_hold_quoted_line_breaks`). Searching every file first was
    a scan of every byte: 9.5 s of Spark task time at 1M people, for files that almost never hold a line break."""
    csv_lines = {
        index: _numbered_csv_lines(spark, raw, layout)
        for index, (raw, layout) in enumerate(files)
        if raw.format != "parquet" and layout.header
    }
    spans: dict[int, list[tuple[int, int]]] = {}
    if find_line_breaks:
        # Numbering lines takes a few small Spark jobs per file; only a file that has a line with an odd number of
        # quotes can hold a quoted line break, and one scan of the unnumbered text finds those files.
        odd_files = files_with_odd_quote_lines(spark, {index: files[index][0].path for index in csv_lines})
        spans = quoted_line_break_spans(spark, {index: csv_lines[index] for index in odd_files})
    rows = []
    for index, (raw, layout) in enumerate(files):
        if raw.format == "parquet":
            rows.append(_read_parquet_rows(spark, raw, layout))
        elif index not in csv_lines:
            rows.append(_empty_rows(spark, layout))
        else:
            records_df = join_quoted_line_breaks(spark, csv_lines[index], spans.get(index, []))
            rows.append(_parsed_csv_records(records_df, layout))
    return rows


def may_hold_quoted_line_breaks(is_malformed: Column, raw_line: Column) -> Column:
    """True for a row read as one physical line that may be part of a record spanning several: it holds an odd
    number of `"`. Every such line is malformed read alone (a quoted field holds an even number, so one quote is
    left unpaired), so the test needs only the malformed rows, whose raw lines quarantine keeps."""
    return is_malformed & has_odd_quotes(raw_line)


def _empty_rows(spark: SparkSession, layout: FileLayout) -> DataFrame:
    names = ", ".join(f"`{name}` string" for name in layout.positions)
    return spark.createDataFrame(
        [], f"line_number long, raw_line string, is_malformed boolean, {names}, continuation_lines int"
    )


def _numbered_csv_lines(spark: SparkSession, raw: RawFile, layout: FileLayout) -> DataFrame:
    """(line_number, raw_line) of every physical line after the header."""
    lines_df = spark.read.text(raw.path).select(
        F.col("value").alias("raw_line"),
        F.col("_metadata.file_block_start").alias("_block"),
        # Counts rows within the task: one task reads a whole block, so a block's ids are consecutive.
        F.monotonically_increasing_id().alias("_order"),
    )
    return (
        number_lines(lines_df, "_block", "_order")
        .where(F.col("line_number") > layout.header_line)
        .select("line_number", "raw_line")
    )


def _parsed_csv_records(records_df: DataFrame, layout: FileLayout) -> DataFrame:
    width = len(layout.header)
    line = F.col("raw_line")
    # The spec quotes fields only where needed, so most lines of a site's extract hold no quote: the regex is run on
    # those that do. Over the 1M bench extract's 3.5M gp event lines with their quotes taken out, the field count
    # took 0.73 s this way and 1.57 s with the regex on every line, best of five in one session (the generator quotes
    # every field: no gain there).
    unquoted = F.when(line.contains('"'), F.regexp_replace(line, _QUOTED_FIELD, "")).otherwise(line)
    field_count = F.size(F.split(unquoted, ",", -1))
    # Wrong field count, an unbalanced quote, or a blank line: the row cannot be trusted field by field.
    is_malformed = (field_count != width) | unquoted.contains('"') | (F.trim("raw_line") == "")
    schema = ", ".join(f"_c{i} string" for i in range(width))
    parsed = F.from_csv(F.col("raw_line"), schema, {"quote": '"', "escape": '"', "mode": "PERMISSIVE"})
    rows_df = records_df.select(
        "line_number",
        "raw_line",
        "continuation_lines",
        is_malformed.alias("is_malformed"),
        parsed.alias("_parsed"),
    )
    return rows_df.select(
        "line_number",
        "raw_line",
        "is_malformed",
        *[
            _field(F.col(f"_parsed._c{pos}") if pos is not None else None, name)
            for name, pos in layout.positions.items()
        ],
        "continuation_lines",
    )


def quote_spans(odd_lines: list[int], max_lines: int = MAX_LINES_PER_RECORD) -> list[tuple[int, int]]:
    """(first line, last line) of each record a quoted line break spreads over several physical lines.

    Pure. `odd_lines` are the line numbers holding an odd number of `"`, ascending: each one opens
    or closes a quoted field that runs over a line break, so they pair up in order. An opening
    line with no closing one within `max_lines` stays a line of its own (malformed: unclosed quote).
    """
    spans, index = [], 0
    while index + 1 < len(odd_lines):
        start, end = odd_lines[index], odd_lines[index + 1]
        if end - start < max_lines:
            spans.append((start, end))
            index += 2
        else:
            index += 1
    return spans


def has_odd_quotes(line: Column) -> Column:
    """True for a line holding an odd number of `"`: it opens or closes a quoted field running over a line break."""
    # A plain replace, not regexp_replace: where every field is quoted, every line is counted, and at 1M people
    # the scan of all files took 5.4 s with the regex and 2.2 s without (gp files, same session).
    return (F.length(line) - F.length(F.replace(line, F.lit('"'), F.lit("")))) % 2 == 1


def files_with_odd_quote_lines(spark: SparkSession, paths: Mapping[int, str]) -> set[int]:
    """Indexes of the CSV files (index -> path) with at least one line holding an odd number of `"`, the header
    included (a superset of the files quoted_line_break_spans finds spans in); one Spark job for all files."""
    if not paths:
        return set()
    odd_df = reduce(
        DataFrame.unionByName,
        [
            spark.read.text(path)
            # Most lines hold no quote at all: a byte search rules them out before the regex. Only valid UTF-8 can be
            # ruled out so: the regex decodes the line, and a broken byte sequence may count differently decoded.
            .where(
                (F.col("value").contains('"') | ~F.is_valid_utf8("value")) & has_odd_quotes(F.col("value"))
            )
            .select(F.lit(index).alias("file_index"))
            for index, path in paths.items()
        ],
    )
    return {row["file_index"] for row in odd_df.distinct().collect()}


def quoted_line_break_spans(
    spark: SparkSession, lines_by_file: Mapping[int, DataFrame]
) -> dict[int, list[tuple[int, int]]]:
    """File index -> quote_spans of its lines: the line numbers holding an odd number of `"` (the first
    MAX_ODD_QUOTE_LINES of each file), collected in one job for all files. The common case, no such line,
    costs that one filtered scan."""
    if not lines_by_file:
        return {}
    odd_df = reduce(
        DataFrame.unionByName,
        [
            lines_df.where(has_odd_quotes(F.col("raw_line"))).select(
                F.lit(index).alias("file_index"), "line_number"
            )
            for index, lines_df in lines_by_file.items()
        ],
    )
    first_lines = F.row_number().over(Window.partitionBy("file_index").orderBy("line_number"))
    odd_lines: dict[int, list[int]] = {}
    for row in (
        odd_df.withColumn("_rank", first_lines)
        .where(F.col("_rank") <= MAX_ODD_QUOTE_LINES)
        .orderBy("file_index", "line_number")
        .collect()
    ):
        odd_lines.setdefault(row["file_index"], []).append(row["line_number"])
    return {index: quote_spans(lines) for index, lines in odd_lines.items()}


def join_quoted_line_breaks(
    spark: SparkSession, lines_df: DataFrame, spans: list[tuple[int, int]]
) -> DataFrame:
    """One row per CSV record: a quoted field holding a line break joins its physical lines (valid CSV).

    `spans` from quoted_line_break_spans. Adds `continuation_lines` (physical lines after the record's
    first), so lines read still reconcile.
    """
    if not spans:
        return lines_df.withColumn("continuation_lines", F.lit(0))
    spans_df = spark.createDataFrame(spans, "span_start long, span_end long")
    in_span = (F.col("line_number") >= F.col("span_start")) & (F.col("line_number") <= F.col("span_end"))
    grouped = (
        lines_df.join(F.broadcast(spans_df), in_span, how="left")
        .withColumn("_record", F.coalesce("span_start", "line_number"))
        .groupBy("_record")
        .agg(F.array_sort(F.collect_list(F.struct("line_number", "raw_line"))).alias("_lines"))
    )
    return grouped.select(
        F.col("_record").alias("line_number"),
        F.array_join(F.transform("_lines", lambda line: line["raw_line"]), "\n").alias("raw_line"),
        (F.size("_lines") - 1).alias("continuation_lines"),
    )


def _field(col: Column | None, name: str) -> Column:
    if col is None:
        return F.lit(None).cast("string").alias(name)
    return missing_to_null(col).alias(name)


def _read_parquet_rows(spark: SparkSession, raw: RawFile, layout: FileLayout) -> DataFrame:
    source_df = spark.read.parquet(raw.path)
    original = source_df.columns
    with_order = source_df.select(
        *[F.col(f"`{c}`") for c in original],
        F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.row_index").alias("_order"),
    )
    numbered_df = number_lines(with_order, "_file", "_order")
    return numbered_df.select(
        "line_number",
        F.to_json(F.struct(*[F.col(f"`{c}`") for c in original])).alias("raw_line"),
        F.lit(False).alias("is_malformed"),
        # Identifiers are strings: a Parquet int column becomes its digits, a date its ISO form.
        *[
            _field(F.col(f"`{original[pos]}`").cast("string") if pos is not None else None, name)
            for name, pos in layout.positions.items()
        ],
        F.lit(0).alias("continuation_lines"),
    )
