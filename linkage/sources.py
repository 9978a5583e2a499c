"""The source registry: everything the pipeline knows about each source, declared once.

One frozen `SourceDeclaration` per source says what its two files are called by default, which
columns they must supply and how their rows are checked, which columns identify a person and how
the record id is made from them, how its sex codes map, how its activity is standardised, the
restricted and pseudonymised activity tables it gets, which activity dates place a person in
time, which free-text fields are published only through a controlled vocabulary, and the default
date and code columns of cohort criteria over its pseudonymised table. Ingest, link,
pseudonymise, cohorts, the configuration's source validation and the synthetic writer's file
names all read the registry (`names()`, `get()`, ...) when they run, never a copy of their own.

Adding a source takes:

1. Its two table contracts in linkage/schemas.py: the restricted `<source>_activity_std`
   (source_dataset and source_record_id, the activity fields, run_id) and the pseudonymised
   activity table (person_id, the fields analysts may see, run_id).
2. One `SourceDeclaration` added to `BUILT_IN` below (or, for a site-specific or test source,
   `register(declaration)` before the configuration is loaded). Its `standardise_activity`
   can stay `standardise_by_contract` (dates parsed, closed codes canonical, text trimmed, each
   contract column in order) unless a field needs more (e.g. ICD-10 codes); its `sex_std` is a
   function of linkage/standardise/sex.py (or `sex_not_recorded`).
3. Where needed: conf/vocabularies/<field>.csv for each field in `free_text_fields` (pseudonymise
   refuses to run without it), and codelists in conf/codelists for cohorts over its table.

The configuration then accepts the source's name everywhere a source is named, `ingest.sources`
defaults to the declared file names, and the source's records join people_std, linkage and the
spine like any other, and the pseudonymised person table gets its `in_<source>` flag
(`person_contract()`). One thing is not derived: the synthetic generator simulates only the four
built-in sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic_core import PydanticCustomError
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from linkage import schemas
from linkage.ingest import activity
from linkage.ingest.fields import FileFields
from linkage.schemas import TableContract
from linkage.standardise import sex


def sex_not_recorded(col: Column) -> Column:
    """For a source whose people file carries no sex: always null."""
    return F.lit(None).cast("string")


@dataclass(frozen=True)
class SourceDeclaration:
    """One source: its files, their checks, how its records are keyed and standardised, and its tables."""

    name: str  # source_dataset value, config key, metric and table name prefix
    record_label: str  # "a GP record": what the person table's in_<name> flag says the person has
    people_file: str  # default file name (without extension) of ingest.sources.<name>.people_file
    activity_file: str  # default of ingest.sources.<name>.activity_file
    people: FileFields  # what the people file must supply and how its rows are checked
    activity: FileFields  # the same for the activity file (closed code sets live here)
    person_id: tuple[str, ...]  # the people-file id columns each activity row points at too
    activity_std: TableContract  # restricted/<name>_activity_std
    pseudonymised_activity: TableContract  # the analysts' activity table
    activity_date_columns: tuple[str, ...]  # every activity date saying when something happened to the person
    cohort_date_column: str  # a cohort criterion's default date column over the pseudonymised table
    cohort_code_columns: tuple[str, ...] | None = (
        None  # a codelist's default columns (None: criteria must say)
    )
    free_text_fields: tuple[str, ...] = ()  # published only as values of conf/vocabularies/<field>.csv
    sex_std: Callable[[Column], Column] = sex_not_recorded  # sex code as supplied -> M, F or null
    standardise_activity: Callable[[DataFrame, SourceDeclaration], DataFrame] = (
        activity.standardise_by_contract
    )

    def record_id(self) -> Column:
        """source_record_id: the trimmed person id; with several id columns, the trimmed parts joined by ':'."""
        parts = [F.trim(F.col(name)) for name in self.person_id]
        return parts[0] if len(parts) == 1 else F.concat_ws(":", *parts)

    def standardised_activity(self, accepted_df: DataFrame) -> DataFrame:
        """Accepted activity rows -> the activity_std columns (without run_id)."""
        return self.standardise_activity(accepted_df, self)

    @property
    def table_names(self) -> tuple[str, ...]:
        return self.activity_std.name, self.pseudonymised_activity.name


BUILT_IN = (
    SourceDeclaration(
        name="gp",
        record_label="a GP record",
        people_file="gp_patients",
        activity_file="gp_events",
        people=FileFields(
            (
                "gp_patient_id",
                "nhs_number",
                "forename",
                "middle_names",
                "surname",
                "date_of_birth",
                "sex",
                "postcode",
                "practice_code",
                "ethnicity",
                "imd_decile",
            ),
            mandatory_ids=("gp_patient_id",),
            unique_key=("gp_patient_id",),
        ),
        activity=FileFields(
            ("gp_patient_id", "event_date", "code_system", "code", "value"),
            mandatory_ids=("gp_patient_id",),
            mandatory_dates=("event_date",),
            closed_codes={"code_system": ("SNOMED", "DMD")},
        ),
        person_id=("gp_patient_id",),
        activity_std=schemas.GP_ACTIVITY_STD,
        pseudonymised_activity=schemas.GP_EVENTS,
        activity_date_columns=("event_date",),
        cohort_date_column="event_date",
        cohort_code_columns=("code",),
        sex_std=sex.sex_std_gp,
        standardise_activity=activity.standardise_gp_activity,
    ),
    SourceDeclaration(
        name="hospital",
        record_label="a hospital record",
        people_file="hospital_patients",
        activity_file="hospital_episodes",
        people=FileFields(
            (
                "hospital_patient_id",
                "nhs_number",
                "forename",
                "surname",
                "date_of_birth",
                "sex",
                "postcode",
                "ethnicity",
            ),
            mandatory_ids=("hospital_patient_id",),
            unique_key=("hospital_patient_id",),
        ),
        activity=FileFields(
            (
                "episode_id",
                "hospital_patient_id",
                "setting",
                "start_date",
                "end_date",
                "admission_method",
                "primary_diagnosis",
                "secondary_diagnoses",
                "treatment_specialty",
                "referral_source",
            ),
            mandatory_ids=("episode_id", "hospital_patient_id"),
            unique_key=("episode_id",),
            mandatory_dates=("start_date",),
            optional_dates=("end_date",),
            closed_codes={"setting": ("APC", "OP", "AE")},
        ),
        person_id=("hospital_patient_id",),
        activity_std=schemas.HOSPITAL_ACTIVITY_STD,
        pseudonymised_activity=schemas.HOSPITAL_EPISODES,
        activity_date_columns=("start_date", "end_date"),
        cohort_date_column="start_date",
        cohort_code_columns=("primary_diagnosis", "secondary_diagnoses"),
        sex_std=sex.sex_std_hospital,
        standardise_activity=activity.standardise_hospital_activity,
    ),
    SourceDeclaration(
        name="social_care",
        record_label="a social care record",
        people_file="social_care_clients",
        activity_file="social_care_events",
        people=FileFields(
            (
                "la_client_id",
                "nhs_number",
                "forename",
                "surname",
                "date_of_birth",
                "sex",
                "postcode",
                "ethnicity",
            ),
            mandatory_ids=("la_client_id",),
            unique_key=("la_client_id",),
        ),
        activity=FileFields(
            (
                "event_id",
                "la_client_id",
                "client_type",
                "event_type",
                "service_type",
                "primary_support_reason",
                "start_date",
                "end_date",
            ),
            mandatory_ids=("event_id", "la_client_id"),
            unique_key=("event_id",),
            mandatory_dates=("start_date",),
            optional_dates=("end_date",),
            closed_codes={
                "client_type": ("Service User", "Carer"),
                "event_type": ("Request", "Assessment", "Service", "Review"),
            },
        ),
        person_id=("la_client_id",),
        activity_std=schemas.SOCIAL_CARE_ACTIVITY_STD,
        pseudonymised_activity=schemas.SOCIAL_CARE_EVENTS,
        activity_date_columns=("start_date", "end_date"),
        cohort_date_column="start_date",
        free_text_fields=("service_type", "primary_support_reason"),
        sex_std=sex.sex_std_social_care,
        standardise_activity=activity.standardise_social_care_activity,
    ),
    SourceDeclaration(
        name="third_sector",
        record_label="a third-sector record",
        people_file="third_sector_clients",
        activity_file="third_sector_contacts",
        people=FileFields(
            (
                "org_client_ref",
                "organisation",
                "forename",
                "surname",
                "date_of_birth",
                "year_of_birth",
                "postcode",
            ),
            mandatory_ids=("organisation", "org_client_ref"),
            unique_key=("organisation", "org_client_ref"),
        ),
        activity=FileFields(
            (
                "contact_id",
                "org_client_ref",
                "organisation",
                "contact_date",
                "contact_reason",
                "unpaid_carer",
            ),
            mandatory_ids=("contact_id", "organisation", "org_client_ref"),
            unique_key=("contact_id",),
            mandatory_dates=("contact_date",),
            closed_codes={"unpaid_carer": ("Y", "N")},
            optional_codes=("unpaid_carer",),
        ),
        person_id=("organisation", "org_client_ref"),  # record id organisation:org_client_ref
        activity_std=schemas.THIRD_SECTOR_ACTIVITY_STD,
        pseudonymised_activity=schemas.THIRD_SECTOR_CONTACTS,
        activity_date_columns=("contact_date",),
        cohort_date_column="contact_date",
        free_text_fields=("organisation", "contact_reason"),
        sex_std=sex.sex_std_third_sector,
        standardise_activity=activity.standardise_third_sector_activity,
    ),
)

_REGISTRY: dict[str, SourceDeclaration] = {source.name: source for source in BUILT_IN}


# -- the registry's public API ---------------------------------------------------------------------


def register(source: SourceDeclaration) -> SourceDeclaration:
    """Add a source (after the built-in ones, in registration order); ValueError if its name or a table clashes."""
    if source.name in _REGISTRY:
        raise ValueError(f"source {source.name} is already registered")
    taken = {name for known in _REGISTRY.values() for name in known.table_names}
    clash = sorted(set(source.table_names) & taken)
    if clash:
        raise ValueError(f"source {source.name}: table(s) {', '.join(clash)} belong to another source")
    if source.activity_std.zone != "restricted" or source.pseudonymised_activity.zone != "pseudonymised":
        raise ValueError(
            f"source {source.name}: activity_std is a restricted table, pseudonymised_activity a "
            "pseudonymised one"
        )
    _REGISTRY[source.name] = source
    return source


def unregister(name: str) -> None:
    """Remove a registered source (built-in ones included: e.g. a site without third-sector data)."""
    del _REGISTRY[name]


@contextmanager
def registered(source: SourceDeclaration) -> Iterator[SourceDeclaration]:
    """The source is registered inside the block only (tests)."""
    register(source)
    try:
        yield source
    finally:
        unregister(source.name)


def names() -> tuple[str, ...]:
    """Every registered source's name, built-in ones first, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> SourceDeclaration:
    """The declaration of a registered source; KeyError naming the registered ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; registered: {', '.join(_REGISTRY)}") from None


def declarations() -> tuple[SourceDeclaration, ...]:
    return tuple(_REGISTRY.values())


def activity_std_contracts() -> dict[str, TableContract]:
    """Source -> its restricted activity table."""
    return {source.name: source.activity_std for source in _REGISTRY.values()}


def pseudonymised_activity_contracts() -> dict[str, TableContract]:
    """Source -> its pseudonymised activity table."""
    return {source.name: source.pseudonymised_activity for source in _REGISTRY.values()}


def person_contract() -> TableContract:
    """pseudonymised/person with an `in_<source>` flag for every registered source, in registry order."""
    return schemas.person_contract([(d.name, d.record_label) for d in declarations()])


def source_of_table(table: str) -> SourceDeclaration:
    """The source whose pseudonymised activity table is named `table`."""
    for source in _REGISTRY.values():
        if source.pseudonymised_activity.name == table:
            return source
    raise KeyError(f"no registered source has a pseudonymised table {table!r}")


def pseudonymised_table_names() -> tuple[str, ...]:
    return tuple(source.pseudonymised_activity.name for source in _REGISTRY.values())


def free_text_fields() -> tuple[str, ...]:
    """Every field published only through a controlled vocabulary, over all sources, sorted."""
    return tuple(sorted({name for source in _REGISTRY.values() for name in source.free_text_fields}))


def restricted_tables() -> tuple[TableContract, ...]:
    """Every restricted table: people_std, each source's activity_std, then the linkage tables."""
    return (schemas.PEOPLE_STD, *activity_std_contracts().values(), *schemas.LINKAGE_TABLES)


def pseudonymised_tables() -> tuple[TableContract, ...]:
    """The person table, then each source's pseudonymised activity table."""
    return (person_contract(), *pseudonymised_activity_contracts().values())


def all_tables() -> tuple[TableContract, ...]:
    return restricted_tables() + pseudonymised_tables()


# -- validation of names, for the configuration and the cohort declarations --------------------------


def not_one_of(allowed: tuple[str, ...]) -> PydanticCustomError:
    """The error pydantic gives a Literal of `allowed`: a registry-checked name reads as it did when it was one."""
    quoted = [repr(value) for value in allowed]
    expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)
    return PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})


def registered_name(value: object) -> str:
    """A registered source's name, else the Literal error naming every registered one."""
    if not isinstance(value, str) or value not in _REGISTRY:
        raise not_one_of(names())
    return value


def registered_table(value: object) -> str:
    """A registered source's pseudonymised activity table name, else the Literal error naming them."""
    if not isinstance(value, str) or value not in pseudonymised_table_names():
        raise not_one_of(pseudonymised_table_names())
    return value
