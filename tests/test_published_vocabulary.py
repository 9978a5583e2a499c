"""Free-text activity fields are published only from conf/vocabularies; Splink scratch of a killed job goes."""

from __future__ import annotations

import pytest
from chispa import assert_column_equality
from pyspark.sql import functions as F

from linkage.config import PROJECT_ROOT
from linkage.errors import ConfigError
from linkage.link.model import remove_leftover_scratch
from linkage.pseudonymise.vocabulary import OTHER, controlled, other_counts, read_vocabularies
from linkage.synthetic import vocab as synthetic_vocab
from linkage.synthetic.activity import CARER_SUPPORT, MENTAL_HEALTH_SUPPORT

VOCABULARIES = PROJECT_ROOT / "conf" / "vocabularies"


def test_a_note_holding_a_name_is_published_as_other(spark):
    allowed = ("Carer support", "Debt")
    df = spark.createDataFrame(
        [
            ("carer  SUPPORT", "Carer support"),
            ("Debt", "Debt"),
            ("Called by daughter Jane O'Neill", OTHER),
            ("", None),
            (None, None),
        ],
        "raw string, expected string",
    )
    actual = df.withColumn("actual", controlled(F.col("raw"), allowed))
    assert_column_equality(actual, "actual", "expected")
    assert other_counts(
        actual.select(F.col("actual").alias("contact_reason")), "third_sector_contacts", ("contact_reason",)
    ) == {"vocabulary_other.third_sector_contacts.contact_reason": 1}


def test_shipped_vocabularies_hold_every_value_the_generator_writes():
    vocabularies = read_vocabularies(VOCABULARIES)
    assert set(synthetic_vocab.SOCIAL_CARE_SERVICES) | {CARER_SUPPORT} <= set(vocabularies["service_type"])
    assert set(synthetic_vocab.SOCIAL_CARE_REASONS) | {MENTAL_HEALTH_SUPPORT} <= set(
        vocabularies["primary_support_reason"]
    )
    assert set(synthetic_vocab.THIRD_SECTOR_REASONS) | {CARER_SUPPORT} <= set(vocabularies["contact_reason"])
    assert set(synthetic_vocab.ORGANISATIONS) <= set(vocabularies["organisation"])


def test_a_missing_vocabulary_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="contact_reason.csv"):
        read_vocabularies(tmp_path)


@pytest.mark.slow
def test_published_free_text_is_only_vocabulary_or_other(pipeline_run, spark):
    assert pipeline_run.exit_code == 0
    vocabularies = read_vocabularies(VOCABULARIES)
    for table, fields in (
        ("social_care_events", ("service_type", "primary_support_reason")),
        ("third_sector_contacts", ("organisation", "contact_reason")),
    ):
        published = spark.read.format("delta").load(str(pipeline_run.lake / "pseudonymised" / table))
        for field in fields:
            values = {r[0] for r in published.select(field).distinct().collect()} - {None}
            assert values and values <= {*vocabularies[field], OTHER}, (table, field)


def test_scratch_a_killed_job_left_is_removed_and_nothing_else(spark, tmp_path):
    scratch = tmp_path / "restricted" / "_scratch"
    (scratch / "splink-deadrun" / "part").mkdir(parents=True)
    (scratch / "splink-deadrun" / "part" / "x.parquet").write_bytes(b"identifiable")
    (scratch / "other").mkdir()
    assert remove_leftover_scratch(spark, str(scratch)) == ["splink-deadrun"]
    assert sorted(p.name for p in scratch.iterdir()) == ["other"]
    assert remove_leftover_scratch(spark, str(tmp_path / "none")) == []
