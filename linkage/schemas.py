"""Table contracts: zone, name, description and typed, commented columns of every Delta table.

These definitions are the single source for three things: the check `lake.write_table`
applies before writing, the table and column comments stored in Delta, and the schema
reference in the README (`python -m linkage.schemas > docs` via `make docs`; a test keeps the
README in step). Each source's activity tables are defined here and declared as that source's in
linkage.sources, which lists every table (`sources.all_tables()`). Other tools and notebooks read these tables: change a contract only on
purpose, and say so in the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql.types import StructType, _parse_datatype_string

from linkage.demographics import PERSON_AGE_BAND_STARTS, age_band_labels

# A source record's key.
RECORD_KEY = ("source_dataset", "source_record_id")
# RECORD_KEY in the order to join (and partition windows) on. A sort-merge join sorts both sides by its keys in
# the order given, comparing rows by an 8-byte prefix of the first key and in full only where prefixes tie. With
# source_dataset first (a handful of values) nearly every comparison of a large sort was a full one: sorting was
# 28% of the CPU samples of a 1M link and 34% of pseudonymise. The record id first: joining 3.5M gp activity rows
# to the 1M spine took 3.8-4.0 s against 5.6-6.0 s (one session, warm). Same rows either way.
RECORD_JOIN_KEY = ("source_record_id", "source_dataset")


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Spark SQL DDL type
    comment: str


@dataclass(frozen=True)
class TableContract:
    zone: str
    name: str
    description: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ()
    # Columns Delta keeps file statistics (min, max, nulls) on, for skipping files on read; empty: Delta's default,
    # the first 32 columns. Computing them is part of every write.
    stats_columns: tuple[str, ...] = ()

    @property
    def schema(self) -> StructType:
        return _parse_datatype_string(", ".join(f"`{c.name}` {c.type}" for c in self.columns))

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _cols(*rows: tuple[str, str, str]) -> tuple[Column, ...]:
    return tuple(Column(*row) for row in rows)


SOURCE_KEY = (
    ("source_dataset", "string", "Source of the record: gp, hospital, social_care or third_sector."),
    ("source_record_id", "string", "The source's local id (third sector: organisation:org_client_ref)."),
)
RUN_ID = ("run_id", "string", "MLflow run that wrote the row.")

# ---------------------------------------------------------------------------------------------
# restricted zone: identifiable, linkage team only

PEOPLE_STD = TableContract(
    "restricted",
    "people_std",
    "One row per people-file record of every source, with standardised identifiers and the raw values kept.",
    _cols(
        *SOURCE_KEY,
        ("forename_raw", "string", "Forename as supplied."),
        ("middle_names_raw", "string", "Middle names as supplied (GP only)."),
        ("surname_raw", "string", "Surname as supplied."),
        ("date_of_birth_raw", "string", "Date of birth as supplied (either date format)."),
        ("year_of_birth_raw", "string", "Year of birth as supplied (third sector only)."),
        ("sex_raw", "string", "Sex code as supplied (each source has its own coding)."),
        ("postcode_raw", "string", "Postcode as supplied."),
        ("nhs_number_raw", "string", "NHS number as supplied, valid or not."),
        ("ethnicity_raw", "string", "Ethnicity as supplied (code or free text)."),
        (
            "forename_std",
            "string",
            "Upper case A-Z, diacritics removed, punctuation dropped; null when empty.",
        ),
        ("middle_names_std", "string", "Standardised middle names, space separated."),
        ("surname_std", "string", "Standardised surname; hyphenated and double surnames joined by a space."),
        ("surname_parts", "array<string>", "Each part of a hyphenated or double surname."),
        (
            "forename_canonical",
            "string",
            "Forename mapped through the nickname/transliteration list (itself when absent).",
        ),
        (
            "surname_canonical",
            "string",
            "Surname mapped through the transliteration list (itself when absent).",
        ),
        ("forename_phonetic", "string", "Phonetic code (Soundex) of forename_canonical."),
        ("surname_phonetic", "string", "Phonetic code (Soundex) of surname_canonical."),
        (
            "date_of_birth",
            "date",
            "Parsed date of birth; null when unparseable, impossible or in the future.",
        ),
        ("dob_is_valid", "boolean", "Date of birth parsed and plausible; null when none was supplied."),
        (
            "dob_is_placeholder",
            "boolean",
            "Date of birth is 1 January, often a placeholder for an unknown date.",
        ),
        (
            "year_of_birth",
            "int",
            "Year of birth: from date_of_birth, or the supplied year when only that is known.",
        ),
        ("sex", "string", "M, F or null (unknown / not specified / other)."),
        (
            "postcode_std",
            "string",
            "Upper case, one space before the inward code; null when not a UK postcode shape.",
        ),
        ("postcode_sector", "string", "Outward code plus first inward digit, e.g. 'LS1 4'."),
        ("postcode_district", "string", "Outward code, e.g. 'LS1'."),
        (
            "postcode_is_valid",
            "boolean",
            "Supplied postcode has a valid UK shape; null when none was supplied.",
        ),
        ("nhs_number", "string", "NHS number when 10 digits with a valid modulus-11 check digit, else null."),
        (
            "nhs_number_is_valid",
            "boolean",
            "Supplied NHS number passed the check; null when none was supplied.",
        ),
        ("ethnicity_code", "string", "NHS ethnic category code A..S, Z (not stated) or 99 (not known)."),
        ("ethnic_group", "string", "Five groups: White, Mixed, Asian, Black, Other; Unknown when not known."),
        ("imd_decile", "int", "Index of Multiple Deprivation decile, 1 = most deprived (GP only)."),
        ("practice_code", "string", "GP practice ODS code (GP only)."),
        ("organisation", "string", "Third-sector organisation (third sector only)."),
        RUN_ID,
    ),
    # Read whole by train and link, looked up by key by review: statistics on its 30-odd identifier columns cost
    # writing time and skip nothing (at 1M people, writing it from memory took 9.3 s with them, 6.5 s without).
    stats_columns=("source_dataset", "source_record_id"),
)

_ACTIVITY_KEY = (
    ("source_dataset", "string", "Source of the record."),
    ("source_record_id", "string", "The people-file record this activity belongs to."),
)

GP_ACTIVITY_STD = TableContract(
    "restricted",
    "gp_activity_std",
    "GP events (SNOMED CT and dm+d coded), standardised.",
    _cols(
        *_ACTIVITY_KEY,
        ("event_date", "date", "Date of the event."),
        ("code_system", "string", "SNOMED or DMD."),
        ("code", "string", "SNOMED CT concept id or dm+d code, trimmed."),
        ("value", "double", "Numeric value recorded with the code, e.g. a blood pressure."),
        RUN_ID,
    ),
)

HOSPITAL_ACTIVITY_STD = TableContract(
    "restricted",
    "hospital_activity_std",
    "Hospital episodes (admitted, outpatient, A&E), standardised.",
    _cols(
        ("episode_id", "string", "Hospital episode id (restricted: a local id)."),
        *_ACTIVITY_KEY,
        ("setting", "string", "APC (admitted), OP (outpatient) or AE (A&E)."),
        ("start_date", "date", "Start of the episode."),
        ("end_date", "date", "End of the episode (APC only)."),
        ("admission_method", "string", "Admission method code, e.g. 11 elective, 21 emergency."),
        ("primary_diagnosis", "string", "ICD-10 code, upper case without the dot, e.g. J459."),
        ("secondary_diagnoses", "array<string>", "Other ICD-10 codes, same form as primary_diagnosis."),
        ("treatment_specialty", "string", "Treatment specialty code, e.g. 711."),
        ("referral_source", "string", "Referral source, e.g. 2WW (urgent suspected cancer)."),
        RUN_ID,
    ),
)

SOCIAL_CARE_ACTIVITY_STD = TableContract(
    "restricted",
    "social_care_activity_std",
    "Local-authority social care events, standardised.",
    _cols(
        ("event_id", "string", "Social care event id (restricted: a local id)."),
        *_ACTIVITY_KEY,
        ("client_type", "string", "Service User or Carer."),
        ("event_type", "string", "Request, Assessment, Service or Review."),
        ("service_type", "string", "Service type, e.g. Home care, Carer support."),
        ("primary_support_reason", "string", "Primary support reason, e.g. Mental health support."),
        ("start_date", "date", "Start date."),
        ("end_date", "date", "End date."),
        RUN_ID,
    ),
)

THIRD_SECTOR_ACTIVITY_STD = TableContract(
    "restricted",
    "third_sector_activity_std",
    "Third-sector contacts, standardised.",
    _cols(
        ("contact_id", "string", "Contact id (restricted: a local id)."),
        *_ACTIVITY_KEY,
        ("organisation", "string", "Organisation recording the contact."),
        ("contact_date", "date", "Date of the contact."),
        ("contact_reason", "string", "Reason, e.g. Carer support, Debt, Mental wellbeing."),
        ("unpaid_carer", "boolean", "Self-declared unpaid carer (Y/N); null when missing."),
        RUN_ID,
    ),
)

QUARANTINE = TableContract(
    "restricted",
    "quarantine",
    "Input rows rejected by ingest, with the reason; nothing read is silently dropped.",
    _cols(
        ("source_dataset", "string", "Source the file belongs to."),
        ("source_file", "string", "File name the row came from."),
        (
            "line_number",
            "long",
            "1-based physical line number in the file (header is line 1); row number for Parquet.",
        ),
        (
            "reason_code",
            "string",
            "encoding_error, malformed_row, missing_mandatory_id, duplicate_id, unparseable_date, impossible_date, future_date, unknown_code.",
        ),
        ("reason_detail", "string", "Which field failed (a column name, never its value)."),
        ("raw_line", "string", "The row as read (restricted: may hold identifiers)."),
        RUN_ID,
    ),
)

PERSON_SPINE = TableContract(
    "restricted",
    "person_spine",
    "Each source record's person: (source_dataset, source_record_id) -> person_key.",
    _cols(
        *SOURCE_KEY,
        (
            "person_key",
            "string",
            "Stable person key: kept across runs while the person's records stay together.",
        ),
        (
            "match_method",
            "string",
            "How the record joined its cluster: nhs_number, probabilistic, singleton, clerical.",
        ),
        ("cluster_size", "int", "Number of source records in the person's cluster."),
        (
            "record_fingerprint",
            "string",
            "SHA-256 of the record's standardised columns when linked: `link --incremental` rescores only records "
            "whose fingerprint changed.",
        ),
        (
            "link_component",
            "string",
            "The record's connected component of links before clusters were split (its smallest record uid): "
            "`link --incremental` reclusters only the components a change reaches.",
        ),
        (
            "link_settings",
            "string",
            "SHA-256 of what turned scores into clusters (model version, thresholds, cluster limits): "
            "`link --incremental` keeps earlier clusters only under the same.",
        ),
        RUN_ID,
    ),
)

PERSON_REGISTRY = TableContract(
    "restricted",
    "person_registry",
    "History of person keys: when each was created, and merges and splits between runs.",
    _cols(
        ("person_key", "string", "Person key."),
        ("event", "string", "created, merged, split or retired."),
        ("related_person_key", "string", "For merged/split: the other key involved."),
        ("record_count", "int", "Records under the key after the event."),
        RUN_ID,
    ),
)

REVIEW_QUEUE = TableContract(
    "restricted",
    "review_queue",
    "Record pairs between the lower and upper thresholds, awaiting clerical review.",
    _cols(
        ("source_dataset_l", "string", "Left record's source."),
        ("source_record_id_l", "string", "Left record's local id."),
        ("source_dataset_r", "string", "Right record's source."),
        ("source_record_id_r", "string", "Right record's local id."),
        ("match_probability", "double", "Model match probability."),
        ("match_weight", "double", "Model match weight (log2 Bayes factor)."),
        RUN_ID,
    ),
)

REVIEW_DECISIONS = TableContract(
    "restricted",
    "review_decisions",
    "Clerical decisions on review pairs, appended (never rewritten); the latest per pair is applied in every "
    "later link run.",
    _cols(
        ("source_dataset_l", "string", "Left record's source."),
        ("source_record_id_l", "string", "Left record's local id."),
        ("source_dataset_r", "string", "Right record's source."),
        ("source_record_id_r", "string", "Right record's local id."),
        (
            "decision",
            "string",
            "match, non_match or unsure (unsure leaves the pair to the model and in the queue).",
        ),
        ("decided_by", "string", "Reviewer role or id (not a name)."),
        ("decided_at", "timestamp", "When the decision was taken."),
        (
            "note",
            "string",
            "Optional reason from a closed list (linkage.review.store.NOTES); null when none.",
        ),
        (
            "queue",
            "string",
            "Where the decision was taken: review_queue, sample or cluster_split; null when written by hand.",
        ),
    ),
)

_PAIR_COLUMNS = (
    ("source_dataset_l", "string", "Left record's source (the pair's records in sorted order)."),
    ("source_record_id_l", "string", "Left record's local id."),
    ("source_dataset_r", "string", "Right record's source."),
    ("source_record_id_r", "string", "Right record's local id."),
)

# The pair tables are written in no order and read whole (review sampling, reports, the next incremental run), so
# file statistics on their columns skip nothing, and cost writing time per pair: at 1M people (5.2M pairs), written
# from memory three times each, alternating in one session, scored_pairs took 11.5 (cold), 7.6 and 7.5 s with
# statistics on every column and 7.4, 5.8 and 6.3 s with them on the left record's key only; link_pairs 9.8, 9.4
# and 7.1 s against 6.2, 5.2 and 5.3 s. At 5M people the pairs are 13 times as many.
PAIR_STATS_COLUMNS = ("source_dataset_l", "source_record_id_l")

LINK_PAIRS = TableContract(
    "restricted",
    "link_pairs",
    "A link run's record pairs: every pair put in one person, and every scored candidate pair; the frame that "
    "review samples are drawn from.",
    _cols(
        *_PAIR_COLUMNS,
        (
            "match_weight",
            "double",
            "Model match weight; null when the pair was never scored (outside blocking).",
        ),
        ("match_probability", "double", "Model match probability; null when never scored."),
        (
            "method",
            "string",
            "For linked pairs: nhs_number, probabilistic or clerical (a direct edge), or transitive "
            "(same person through other records); null when not linked.",
        ),
        ("is_linked", "boolean", "Both records are in the same person."),
        (
            "is_best_candidate",
            "boolean",
            "The pair is one record's single best-weighted candidate among the other record's source; "
            "false below match weight -10, where review samples nothing.",
        ),
        RUN_ID,
    ),
    stats_columns=PAIR_STATS_COLUMNS,
)

SCORED_PAIRS = TableContract(
    "restricted",
    "scored_pairs",
    "The link run's scored candidate pairs, as the model scored them: what the next `link --incremental` "
    "reuses for pairs whose records did not change.",
    _cols(
        ("source_dataset_l", "string", "Left record's source (the model's order: by source, then id)."),
        ("source_record_id_l", "string", "Left record's local id."),
        ("source_dataset_r", "string", "Right record's source."),
        ("source_record_id_r", "string", "Right record's local id."),
        ("match_weight", "double", "Model match weight (log2 Bayes factor with the prior)."),
        ("match_probability", "double", "Model match probability."),
        ("match_key", "string", "Index of the first prediction blocking rule that found the pair."),
        ("model_version", "string", "Registered model version that scored the pair."),
        RUN_ID,
    ),
    stats_columns=PAIR_STATS_COLUMNS,
)

REVIEW_SAMPLE = TableContract(
    "restricted",
    "review_sample",
    "Stratified random sample of a link run's pairs for clerical review; its strata sizes and inclusion "
    "probabilities make the accuracy estimates unbiased.",
    _cols(
        ("sample_id", "string", "Sample drawn: link run, seed and size, e.g. <run_id>:s42:n300."),
        (
            "stratum",
            "string",
            "link|<method>|<weight band> or near_miss|<best_candidate or other>|<weight band>.",
        ),
        *_PAIR_COLUMNS,
        ("match_weight", "double", "Model match weight (null: never scored)."),
        ("match_probability", "double", "Model match probability (null: never scored)."),
        ("is_linked", "boolean", "The link run put both records in the same person."),
        ("method", "string", "Link method (null when not linked)."),
        ("stratum_size", "long", "Pairs of the link run in the stratum."),
        ("stratum_sample_size", "long", "Pairs drawn from the stratum."),
        ("inclusion_probability", "double", "stratum_sample_size / stratum_size."),
        (
            "ethnic_group",
            "string",
            "Pair's ethnic group (either record's known value; Unknown when neither).",
        ),
        ("sex", "string", "Pair's sex (either record's known value)."),
        (
            "age_band",
            "string",
            "Pair's age band in the year of linkage.qa_reference_date (as the truth metrics).",
        ),
        ("imd_quintile", "string", "Pair's IMD quintile (GP records carry IMD)."),
        ("drawn_at", "timestamp", "When the sample was drawn."),
        ("run_id", "string", "MLflow run of the link run the sample is drawn from."),
    ),
)

# ---------------------------------------------------------------------------------------------
# pseudonymised zone: analysts

_PERSON_ID = (
    "person_id",
    "string",
    "Pseudonymous person id: HMAC-SHA256 of person_key under the release key (hex).",
)

PERSON_TABLE_NAME = "person"


def person_contract(sources_held: Sequence[tuple[str, str]]) -> TableContract:
    """pseudonymised/person, with one `in_<source>` flag per (source name, "a GP record"-style label): the
    source registry passes its sources (`linkage.sources.person_contract()`), so a new source gets its flag."""
    return TableContract(
        "pseudonymised",
        PERSON_TABLE_NAME,
        "One row per person: generalised attributes only, no direct identifiers.",
        _cols(
            _PERSON_ID,
            ("year_of_birth", "int", "Year of birth."),
            ("month_of_birth", "int", "Month of birth (1-12); null when only a year is known."),
            (
                "age_band",
                "string",
                "Age at the release reference date, in bands "
                f"{', '.join(age_band_labels(PERSON_AGE_BAND_STARTS))}.",
            ),
            ("sex", "string", "M, F or null."),
            ("ethnic_group", "string", "White, Mixed, Asian, Black, Other or Unknown."),
            ("imd_decile", "int", "IMD decile, 1 = most deprived."),
            ("postcode_district", "string", "Outward code of the most recent known postcode."),
            *[(f"in_{name}", "boolean", f"Person has {label}.") for name, label in sources_held],
            ("first_activity_date", "date", "Earliest activity date in any source."),
            ("last_activity_date", "date", "Latest activity date in any source."),
            RUN_ID,
        ),
    )


GP_EVENTS = TableContract(
    "pseudonymised",
    "gp_events",
    "GP events keyed by person_id.",
    _cols(
        _PERSON_ID,
        ("event_date", "date", "Date of the event."),
        ("code_system", "string", "SNOMED or DMD."),
        ("code", "string", "SNOMED CT concept id or dm+d code."),
        ("value", "double", "Numeric value recorded with the code."),
        RUN_ID,
    ),
)

HOSPITAL_EPISODES = TableContract(
    "pseudonymised",
    "hospital_episodes",
    "Hospital episodes keyed by person_id.",
    _cols(
        _PERSON_ID,
        ("setting", "string", "APC, OP or AE."),
        ("start_date", "date", "Start of the episode."),
        ("end_date", "date", "End of the episode (APC only)."),
        ("admission_method", "string", "Admission method code."),
        ("primary_diagnosis", "string", "ICD-10 code without the dot."),
        ("secondary_diagnoses", "array<string>", "Other ICD-10 codes."),
        ("treatment_specialty", "string", "Treatment specialty code."),
        ("referral_source", "string", "Referral source, e.g. 2WW."),
        RUN_ID,
    ),
)

SOCIAL_CARE_EVENTS = TableContract(
    "pseudonymised",
    "social_care_events",
    "Social care events keyed by person_id.",
    _cols(
        _PERSON_ID,
        ("client_type", "string", "Service User or Carer."),
        ("event_type", "string", "Request, Assessment, Service or Review."),
        ("service_type", "string", "Service type."),
        ("primary_support_reason", "string", "Primary support reason."),
        ("start_date", "date", "Start date."),
        ("end_date", "date", "End date."),
        RUN_ID,
    ),
)

THIRD_SECTOR_CONTACTS = TableContract(
    "pseudonymised",
    "third_sector_contacts",
    "Third-sector contacts keyed by person_id.",
    _cols(
        _PERSON_ID,
        ("organisation", "string", "Organisation recording the contact."),
        ("contact_date", "date", "Date of the contact."),
        ("contact_reason", "string", "Reason for the contact."),
        ("unpaid_carer", "boolean", "Self-declared unpaid carer."),
        RUN_ID,
    ),
)

# The tables that are not per source; linkage.sources adds each registered source's activity tables
# (sources.restricted_tables(), pseudonymised_tables(), all_tables()).
LINKAGE_TABLES = (
    QUARANTINE,
    PERSON_SPINE,
    PERSON_REGISTRY,
    REVIEW_QUEUE,
    REVIEW_DECISIONS,
    LINK_PAIRS,
    SCORED_PAIRS,
    REVIEW_SAMPLE,
)


def markdown_reference(contracts: tuple[TableContract, ...]) -> str:
    """The README's schema reference, generated from the contracts."""
    parts = []
    for contract in contracts:
        parts.append(f"#### `{contract.zone}/{contract.name}`\n\n{contract.description}\n")
        parts.append("| column | type | meaning |\n|---|---|---|")
        parts.extend(f"| `{c.name}` | {c.type} | {c.comment} |" for c in contract.columns)
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    from linkage.sources import all_tables

    print(markdown_reference(all_tables()))
