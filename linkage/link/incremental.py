"""Incremental linkage: rescore only the pairs that hold a new or changed record.

A full link scores every candidate pair of the blocking rules. Between two runs most records are as
they were, and so are the pairs among them. `link --incremental`:

1. fingerprints each people_std record over the columns linkage reads (`record_fingerprint`; the
   spine keeps each record's fingerprint), and takes as changed every record whose key and
   fingerprint are not on the previous spine: new records and records whose identifiers changed;
2. scores, with the approved model, only the candidate pairs holding a changed record (changed x
   all and unchanged x changed: `linkage.link.scorer.blocked_pairs`);
3. takes every other pair from the previous run's scored pairs (`restricted/scored_pairs`), minus
   pairs holding a record that is gone;
4. clusters, keys and writes as a full link does, over the union.

So person keys, the registry's events and reviewer decisions keep their meaning. The one
difference from a full relink is stated, not hidden: a reused pair keeps the term-frequency
adjustment of the run that scored it, where a full relink would recompute the frequencies over the
new extract (a name a few records more or less common). The bench measures the spines' difference.
An incremental run falls back to a full link, and says why, when there is no previous spine or
scored pairs, or the previous pairs were scored by another model version.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from linkage.link.deterministic import PAIR_KEYS
from linkage.link.spine import RECORD_KEY

FINGERPRINT = "record_fingerprint"
# Not part of what a record says: the run that wrote it, and the values as supplied (linkage reads the
# standardised ones).
NOT_FINGERPRINTED = ("run_id",)
# What the next incremental run reuses of a pair: the columns every later step reads.
SCORED_PAIR_COLUMNS = (*PAIR_KEYS, "match_weight", "match_probability", "match_key")


def record_fingerprint(people_df: DataFrame) -> Column:
    """SHA-256 of the record's standardised columns (every people_std column but the raw values and run_id)."""
    columns = sorted(c for c in people_df.columns if c not in NOT_FINGERPRINTED and not c.endswith("_raw"))
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def fingerprints(people_df: DataFrame) -> DataFrame:
    """(source_dataset, source_record_id, record_fingerprint) of every record."""
    return people_df.select(*RECORD_KEY, record_fingerprint(people_df).alias(FINGERPRINT))


def changed_records(fingerprints_df: DataFrame, previous_spine_df: DataFrame) -> DataFrame:
    """Keys of the records (`fingerprints` of this extract) that are new, or whose fingerprint differs from the one
    on the previous spine."""
    previous = previous_spine_df.select(*RECORD_KEY, FINGERPRINT)
    return fingerprints_df.join(previous, [*RECORD_KEY, FINGERPRINT], how="left_anti").select(*RECORD_KEY)


def stale_records(people_df: DataFrame, previous_spine_df: DataFrame, changed_df: DataFrame) -> DataFrame:
    """Keys whose previous pairs cannot be reused: the changed records and the records that are gone."""
    gone = previous_spine_df.select(*RECORD_KEY).join(
        people_df.select(*RECORD_KEY), list(RECORD_KEY), how="left_anti"
    )
    return changed_df.select(*RECORD_KEY).unionByName(gone)


def reusable_pairs(previous_pairs_df: DataFrame, stale_df: DataFrame) -> DataFrame:
    """The previous run's scored pairs holding no stale record (`stale_records`).

    The stale keys are a small share of the records (a larger change links in full, `too_large_a_change`), so
    they are broadcast: the pairs are filtered where they are read, not shuffled against all the records."""
    pairs = previous_pairs_df.select(*SCORED_PAIR_COLUMNS)
    for side in ("l", "r"):
        stale = F.broadcast(stale_df.select(*[F.col(c).alias(f"{c}_{side}") for c in RECORD_KEY]))
        pairs = pairs.join(stale, [f"{c}_{side}" for c in RECORD_KEY], how="left_anti")
    return pairs


# Above this share of changed records an incremental link does most of a full link's scoring anyway, and
# broadcasting the changed records to every blocking join stops being cheap: link in full.
MAX_CHANGED_SHARE = 0.2


def too_large_a_change(changed: int, records: int) -> str | None:
    """Why a change is too large to link incrementally, or None."""
    if records and changed > MAX_CHANGED_SHARE * records:
        return (
            f"{changed / records:.1%} of the records are new or changed (more than {MAX_CHANGED_SHARE:.0%})"
        )
    return None


def fallback_reason(
    previous_spine_df: DataFrame | None, previous_pairs_df: DataFrame | None, model_version: str
) -> str | None:
    """Why an incremental run must link in full, or None when it can reuse the previous run's pairs."""
    if previous_spine_df is None or previous_pairs_df is None:
        return "no previous spine and scored pairs"
    if FINGERPRINT not in previous_spine_df.columns:
        return "the previous spine holds no record fingerprints"
    versions = [row[0] for row in previous_pairs_df.select("model_version").distinct().limit(2).collect()]
    if versions and versions != [model_version]:
        return f"the previous pairs were scored by model version {', '.join(map(str, versions))}"
    return None
