"""People files -> rows of restricted/people_std: standardised identifiers beside the raw values.

A bad date of birth, NHS number, postcode, sex or ethnicity code does not quarantine the
person (they can still be linked on the rest): the field becomes null, a flag says why where
the contract has one, and the raw value is kept. Only id problems and malformed rows
quarantine a people row.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from linkage import sources
from linkage.ingest.rules import DateRules
from linkage.standardise import dates, ethnicity, names, nhs_number, postcode


def _raw(df: DataFrame, name: str) -> Column:
    """A field the source supplies, or null for one it does not have (e.g. middle names outside GP)."""
    return F.col(name) if name in df.columns else F.lit(None).cast("string")


def source_record_id(source: str) -> Column:
    """The people-file's local id (trimmed); third sector: organisation:org_client_ref (see sources.record_id)."""
    return sources.get(source).record_id()


def with_raw_fields(df: DataFrame, source: str) -> DataFrame:
    """Key and raw identifier columns, named as in people_std."""
    return df.select(
        F.lit(source).alias("source_dataset"),
        source_record_id(source).alias("source_record_id"),
        *[
            _raw(df, field).alias(f"{field}_raw")
            for field in (
                "forename",
                "middle_names",
                "surname",
                "date_of_birth",
                "year_of_birth",
                "sex",
                "postcode",
                "nhs_number",
                "ethnicity",
            )
        ],
        _raw(df, "imd_decile").alias("_imd_decile_raw"),
        F.upper(F.trim(_raw(df, "practice_code"))).alias("practice_code"),
        F.trim(_raw(df, "organisation")).alias("organisation"),
    )


def with_names_std(df: DataFrame) -> DataFrame:
    return (
        df.withColumn("forename_std", names.name_std(F.col("forename_raw")))
        .withColumn("middle_names_std", names.name_std(F.col("middle_names_raw")))
        .withColumn("surname_std", names.name_std(F.col("surname_raw")))
        .withColumn("surname_parts", names.name_parts(F.col("surname_std")))
    )


def with_canonical_names(df: DataFrame, nicknames_df: DataFrame) -> DataFrame:
    return (
        df.transform(
            names.with_canonical_name, "forename_std", "forename_canonical", nicknames_df, "forename"
        )
        .transform(names.with_canonical_name, "surname_std", "surname_canonical", nicknames_df, "surname")
        .withColumn("forename_phonetic", names.name_phonetic(F.col("forename_canonical")))
        .withColumn("surname_phonetic", names.name_phonetic(F.col("surname_canonical")))
    )


def with_birth_std(df: DataFrame, rules: DateRules) -> DataFrame:
    # The ISO text, the parsed date and its problem are columns of their own, each computed once: as nested
    # expressions (dates.dob_parse, dates.dob_is_valid) every row ran the same regexes and parse several times.
    raw_dob = F.col("date_of_birth_raw")
    return (
        df.withColumn("_dob_iso", dates.date_iso_text(raw_dob))
        .withColumn("_dob_parsed", dates.iso_text_date(F.col("_dob_iso")))
        .withColumn(
            "_dob_problem",
            dates.date_problem_of(
                raw_dob, F.col("_dob_iso"), F.col("_dob_parsed"), rules.earliest_year, rules.latest
            ),
        )
        .withColumn("date_of_birth", dates.dob_of(F.col("_dob_parsed"), F.col("_dob_problem")))
        .withColumn("dob_is_valid", dates.dob_validity(raw_dob, F.col("_dob_problem")))
        .drop("_dob_iso", "_dob_parsed", "_dob_problem")
        .withColumn("dob_is_placeholder", dates.dob_is_placeholder(F.col("date_of_birth")))
        .withColumn(
            "year_of_birth",
            F.coalesce(
                F.year("date_of_birth"),
                dates.year_parse(F.col("year_of_birth_raw"), rules.earliest_year, rules.latest),
            ),
        )
    )


def with_sex_std(df: DataFrame, source: str) -> DataFrame:
    return df.withColumn("sex", sources.get(source).sex_std(F.col("sex_raw")))


def with_postcode_std(df: DataFrame) -> DataFrame:
    # The spaced form is a column computed once: the standard form and the validity flag both read it, and as
    # nested expressions each read ran its two regexes again.
    raw = F.col("postcode_raw")
    return (
        df.withColumn("_postcode_spaced", postcode.postcode_spaced(raw))
        .withColumn("postcode_std", postcode.postcode_std_of_spaced(F.col("_postcode_spaced")))
        .withColumn("postcode_sector", postcode.postcode_sector(F.col("postcode_std")))
        .withColumn("postcode_district", postcode.postcode_district(F.col("postcode_std")))
        .withColumn("postcode_is_valid", postcode.is_valid_spaced_postcode(raw, F.col("_postcode_spaced")))
        .drop("_postcode_spaced")
    )


def with_nhs_number_checked(df: DataFrame) -> DataFrame:
    # The digits are a column computed once: the check reads them a dozen times, and as a nested expression
    # (nhs_number.nhs_number_std) each read ran the regex again.
    raw = F.col("nhs_number_raw")
    return (
        df.withColumn("_nhs_digits", nhs_number.nhs_number_digits(raw))
        .withColumn("_nhs_valid", nhs_number.digits_are_valid(raw, F.col("_nhs_digits")))
        .withColumn("nhs_number", F.when(F.col("_nhs_valid"), F.col("_nhs_digits")))
        .withColumn("nhs_number_is_valid", F.col("_nhs_valid"))
        .drop("_nhs_digits", "_nhs_valid")
    )


def with_ethnicity_std(df: DataFrame) -> DataFrame:
    return df.withColumn("ethnicity_code", ethnicity.ethnicity_code(F.col("ethnicity_raw"))).withColumn(
        "ethnic_group", ethnicity.ethnic_group(F.col("ethnicity_code"))
    )


def imd_decile(col: Column) -> Column:
    """Integer 1..10, else null."""
    text = F.trim(col)
    value = F.when(text.rlike(r"^\d{1,2}$"), text.try_cast("int"))
    return F.when(value.between(1, 10), value)


def standardise_people(
    accepted_df: DataFrame, source: str, nicknames_df: DataFrame, rules: DateRules
) -> DataFrame:
    """Accepted people rows -> people_std columns (without run_id)."""
    return (
        accepted_df.transform(with_raw_fields, source)
        .transform(with_names_std)
        .transform(with_canonical_names, nicknames_df)
        .transform(with_birth_std, rules)
        .transform(with_sex_std, source)
        .transform(with_postcode_std)
        .transform(with_nhs_number_checked)
        .transform(with_ethnicity_std)
        .withColumn("imd_decile", imd_decile(F.col("_imd_decile_raw")))
        .drop("_imd_decile_raw")
    )
