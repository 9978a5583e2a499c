"""What the review app reads and writes: work queues, the records behind them, decisions.

Everything a reviewer can open is read from the lake in one pass when the app starts (or on
reload) and kept in memory, so moving between pairs costs no Spark job: the pairs of
restricted/review_queue and, when present, restricted/review_sample; both records of each pair
and every other record of their persons in restricted/person_spine, with the standardised
values from restricted/people_std and the term frequencies the model's evidence needs.

Decisions are appended to restricted/review_decisions (one Delta commit per decision or cluster
split), the table every later link run applies. Pairs are written in canonical order (the left
record sorts first), as the link run spells them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import product
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from linkage import __version__
from linkage.lake import append_table, read_table, table_exists
from linkage.link.deterministic import PAIR_KEYS
from linkage.link.settings import MODEL_COLUMNS
from linkage.link.spine import RECORD_KEY, ordered_pairs
from linkage.schemas import PEOPLE_STD, PERSON_SPINE, REVIEW_DECISIONS, REVIEW_QUEUE

QUEUE_REVIEW = "review_queue"
QUEUE_SAMPLE = "sample"
QUEUE_CLUSTER_SPLIT = "cluster_split"
QUEUE_LABELS = {QUEUE_REVIEW: "Review queue (between the thresholds)", QUEUE_SAMPLE: "Estimation sample"}
# The sampling stage's table (its contract lives with the sampling code); read only when present.
REVIEW_SAMPLE_TABLE = ("restricted", "review_sample")
SAMPLE_EXTRA_COLUMNS = ("sample_id", "stratum")

DECISIONS = ("match", "non_match", "unsure")
# The closed list of notes a reviewer may attach: value written -> label shown.
NOTES = {
    "same_person_name_change": "Same person: name changed",
    "same_person_typo": "Same person: typing or transcription error",
    "same_person_moved": "Same person: moved address",
    "family_member": "Different people: family member or twin",
    "different_date_of_birth": "Different people: dates of birth disagree",
    "common_name": "Different people: common name, little else agrees",
    "too_little_information": "Too little information to decide",
    "data_quality": "Data quality problem in a source",
}

# What the reviewer sees of each record: label -> (standardised column compared, supplied column or None).
DISPLAY_FIELDS = (
    ("Forename", "forename_std", "forename_raw"),
    ("Middle names", "middle_names_std", "middle_names_raw"),
    ("Surname", "surname_std", "surname_raw"),
    ("Date of birth", "date_of_birth", "date_of_birth_raw"),
    ("Year of birth", "year_of_birth", "year_of_birth_raw"),
    ("Sex", "sex", "sex_raw"),
    ("Postcode", "postcode_std", "postcode_raw"),
    ("NHS number", "nhs_number", "nhs_number_raw"),
    ("Ethnic group", "ethnic_group", "ethnicity_raw"),
    ("GP practice", "practice_code", None),
    ("Organisation", "organisation", None),
)
SPINE_COLUMNS = ("person_key", "match_method", "cluster_size")

RecordKey = tuple[str, str]
PairKey = tuple[str, str, str, str]


def canonical_pair(left: RecordKey, right: RecordKey) -> PairKey:
    """The pair with the record that sorts first on the left (the link run's spelling of a pair)."""
    first, second = sorted((tuple(left), tuple(right)))
    return (*first, *second)


@dataclass(frozen=True)
class Pair:
    queue: str
    index: int
    key: PairKey
    match_weight: float | None
    match_probability: float | None
    stratum: str | None = None

    @property
    def left(self) -> RecordKey:
        return self.key[0], self.key[1]

    @property
    def right(self) -> RecordKey:
        return self.key[2], self.key[3]


@dataclass(frozen=True)
class Decision:
    decision: str
    note: str | None
    queue: str | None
    decided_by: str
    decided_at: datetime


# ---------------------------------------------------------------------------------------------
# Spark side: small DataFrame -> DataFrame steps


def queue_pairs(queue_df: DataFrame, extra: Iterable[str] = (), by_score: bool = True) -> DataFrame:
    """A queue's pairs in canonical order with their scores (and any extra columns present).

    The review queue comes best first; a sample comes in sample_id order, so the order of the
    pairs does not tell a reviewer in blind mode what the model thought.
    """
    present = [c for c in extra if c in queue_df.columns]
    absent = [F.lit(None).cast("string").alias(c) for c in extra if c not in queue_df.columns]
    order = [F.col("match_weight").desc_nulls_last()] if by_score else [F.col("sample_id")]
    return (
        ordered_pairs(queue_df.select(*PAIR_KEYS, "match_weight", "match_probability", *present))
        .select("*", *absent)
        .orderBy(*order, *PAIR_KEYS)
    )


def records_to_review(ends_df: DataFrame, spine_df: DataFrame | None, people_df: DataFrame) -> DataFrame:
    """The pair records and every other record of their persons, with what the reviewer and the model see."""
    shown = sorted({c for _, std, raw in DISPLAY_FIELDS for c in (std, raw) if c} | set(MODEL_COLUMNS))
    people = people_df.select(*[c for c in shown if c in people_df.columns])
    if spine_df is None:
        keyed = ends_df.select(*RECORD_KEY, *[F.lit(None).cast("string").alias(c) for c in SPINE_COLUMNS])
    else:
        persons = spine_df.join(ends_df, list(RECORD_KEY), how="inner").select("person_key").distinct()
        wanted = (
            spine_df.join(persons, "person_key", how="inner")
            .select(*RECORD_KEY)
            .unionByName(ends_df)
            .distinct()
        )
        keyed = wanted.join(spine_df.select(*RECORD_KEY, *SPINE_COLUMNS), list(RECORD_KEY), how="left")
    return keyed.join(people, list(RECORD_KEY), how="inner")


def with_term_frequencies(records_df: DataFrame, people_df: DataFrame, columns: Iterable[str]) -> DataFrame:
    """tf_<column> on each record: the value's share of the non-null values in all of people_std.

    The figure Splink computes over the link run's input (its term_frequencies_for_single_column_sql),
    so the evidence shown matches the score the link run gave.
    """
    for column in columns:
        frequencies = (
            people_df.where(F.col(column).isNotNull())
            .groupBy(column)
            .agg(F.count("*").alias("n"))
            .select(column, (F.col("n") / F.sum("n").over(Window.partitionBy())).alias(f"tf_{column}"))
        )
        records_df = records_df.join(frequencies, column, how="left")
    return records_df


def latest_decision_rows(decisions_df: DataFrame) -> DataFrame:
    """The latest decision per pair (canonical order) with its note and queue, which tables written before
    those columns existed lack."""
    optional = [
        F.col(c) if c in decisions_df.columns else F.lit(None).cast("string").alias(c)
        for c in ("note", "queue")
    ]
    latest_first = Window.partitionBy(*PAIR_KEYS).orderBy(
        F.col("decided_at").desc_nulls_last(), F.col("decision")
    )
    return (
        ordered_pairs(decisions_df.select(*PAIR_KEYS, "decision", "decided_by", "decided_at", *optional))
        .withColumn("rank", F.row_number().over(latest_first))
        .where("rank = 1")
        .drop("rank")
    )


# ---------------------------------------------------------------------------------------------
# The in-memory store the app reads


@dataclass
class ReviewData:
    """One consistent read of the lake: queues, records, persons and the latest decisions."""

    queues: dict[str, list[Pair]] = field(default_factory=dict)
    records: dict[RecordKey, dict[str, Any]] = field(default_factory=dict)
    persons: dict[str, list[RecordKey]] = field(default_factory=dict)
    decisions: dict[PairKey, Decision] = field(default_factory=dict)

    @property
    def person_keys(self) -> list[str]:
        return sorted(self.persons)


class ReviewStore:
    """Reads the lake into a ReviewData and appends decisions; one lock serialises writes and reloads."""

    def __init__(self, spark: SparkSession, lake: str, reviewer: str, tf_columns: Iterable[str] = ()) -> None:
        self.spark, self.lake, self.reviewer = spark, lake, reviewer
        self.tf_columns = tuple(tf_columns)
        self.data = ReviewData()
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------------------------

    def load(self) -> ReviewData:
        with self._lock:
            self.data = self._read()
            return self.data

    def _read(self) -> ReviewData:
        spark, lake = self.spark, self.lake
        data = ReviewData()
        frames = []
        if table_exists(spark, lake, REVIEW_QUEUE):
            frames.append(
                (QUEUE_REVIEW, queue_pairs(read_table(spark, lake, REVIEW_QUEUE), SAMPLE_EXTRA_COLUMNS))
            )
        sample_path = f"{lake.rstrip('/')}/{'/'.join(REVIEW_SAMPLE_TABLE)}"
        if _is_delta(spark, sample_path):
            sample = spark.read.format("delta").load(sample_path)
            frames.append((QUEUE_SAMPLE, queue_pairs(sample, SAMPLE_EXTRA_COLUMNS, by_score=False)))
        for name, frame in frames:
            rows = frame.collect()
            data.queues[name] = [
                Pair(
                    name,
                    i,
                    canonical_pair(
                        (r.source_dataset_l, r.source_record_id_l), (r.source_dataset_r, r.source_record_id_r)
                    ),
                    r.match_weight,
                    r.match_probability,
                    r.stratum,
                )
                for i, r in enumerate(rows)
            ]
        if table_exists(spark, lake, REVIEW_DECISIONS):
            for r in latest_decision_rows(read_table(spark, lake, REVIEW_DECISIONS)).collect():
                data.decisions[
                    (r.source_dataset_l, r.source_record_id_l, r.source_dataset_r, r.source_record_id_r)
                ] = Decision(r.decision, r.note, r.queue, r.decided_by or "", r.decided_at)
        pairs = [p for queue in data.queues.values() for p in queue]
        if not pairs or not table_exists(spark, lake, PEOPLE_STD):
            return data
        ends = spark.createDataFrame(
            [p.left for p in pairs] + [p.right for p in pairs],
            "source_dataset string, source_record_id string",
        ).distinct()
        people = read_table(spark, lake, PEOPLE_STD)
        spine = read_table(spark, lake, PERSON_SPINE) if table_exists(spark, lake, PERSON_SPINE) else None
        records = with_term_frequencies(records_to_review(ends, spine, people), people, self.tf_columns)
        for row in records.collect():
            record = row.asDict()
            key = (record["source_dataset"], record["source_record_id"])
            data.records[key] = record
            if record.get("person_key"):
                data.persons.setdefault(record["person_key"], []).append(key)
        for members in data.persons.values():
            members.sort()
        return data

    # -- writing --------------------------------------------------------------------------------

    def decide(self, pairs: Iterable[PairKey], decision: str, note: str | None, queue: str) -> int:
        """Append one decision per pair (one Delta commit); returns how many were written."""
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}")
        if note is not None and note not in NOTES:
            raise ValueError("note is not in the closed list")
        if queue not in (QUEUE_REVIEW, QUEUE_SAMPLE, QUEUE_CLUSTER_SPLIT):
            raise ValueError("unknown queue")
        now = datetime.now(UTC)
        rows = [(*canonical_pair(p[:2], p[2:]), decision, self.reviewer, now, note, queue) for p in pairs]
        if not rows:
            return 0
        with self._lock:
            frame = self.spark.createDataFrame(rows, REVIEW_DECISIONS.schema)
            append_table(frame, self.lake, REVIEW_DECISIONS, {"job": "review", "code_version": __version__})
            for row in rows:
                self.data.decisions[row[:4]] = Decision(decision, note, queue, self.reviewer, now)
        return len(rows)

    def split_pairs(self, person_key: str, split_off: Iterable[RecordKey]) -> list[PairKey]:
        """Every pair between the records split off and the rest of the person's records."""
        members = self.data.persons.get(person_key, [])
        chosen = {tuple(k) for k in split_off} & set(members)
        rest = [k for k in members if k not in chosen]
        return [canonical_pair(a, b) for a, b in product(sorted(chosen), rest)]


def _is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    try:
        return DeltaTable.isDeltaTable(spark, path)
    except Exception:  # noqa: BLE001 - an unreadable path is simply no sample
        return False


def status_counts(pairs: list[Pair], decisions: Mapping[PairKey, Decision]) -> dict[str, int]:
    """How many of a queue's pairs are pending, unsure, or decided match / non_match."""
    counts = {"pending": 0, "match": 0, "non_match": 0, "unsure": 0}
    for pair in pairs:
        decision = decisions.get(pair.key)
        counts[decision.decision if decision else "pending"] += 1
    return counts
