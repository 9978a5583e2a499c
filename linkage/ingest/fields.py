"""The canonical fields ingest reads from each file, and which of them are ids, dates and closed codes.

Names are the spec's column names (shared/specs/source-extracts.md); a site whose columns are
named differently maps them in `ingest.sources.<source>.people_columns` / `activity_columns`.
Columns the spec lists but nothing downstream uses (GP registration dates) are not read, so
a site that does not send them is not refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FileFields:
    """What one file must supply and how its rows are checked."""

    fields: tuple[str, ...]
    mandatory_ids: tuple[str, ...]  # blank -> missing_mandatory_id
    unique_key: tuple[str, ...] = ()  # repeated within the file -> duplicate_id (every copy)
    mandatory_dates: tuple[str, ...] = ()  # missing or bad -> quarantine
    optional_dates: tuple[str, ...] = ()  # bad when supplied -> quarantine
    closed_codes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # field -> allowed (canonical spelling)
    optional_codes: tuple[str, ...] = ()  # closed-code fields that may be missing


PEOPLE = {
    "gp": FileFields(
        ("gp_patient_id", "nhs_number", "forename", "middle_names", "surname", "date_of_birth", "sex", "postcode",
         "practice_code", "ethnicity", "imd_decile"),
        mandatory_ids=("gp_patient_id",), unique_key=("gp_patient_id",),
    ),
    "hospital": FileFields(
        ("hospital_patient_id", "nhs_number", "forename", "surname", "date_of_birth", "sex", "postcode", "ethnicity"),
        mandatory_ids=("hospital_patient_id",), unique_key=("hospital_patient_id",),
    ),
    "social_care": FileFields(
        ("la_client_id", "nhs_number", "forename", "surname", "date_of_birth", "sex", "postcode", "ethnicity"),
        mandatory_ids=("la_client_id",), unique_key=("la_client_id",),
    ),
    "third_sector": FileFields(
        ("org_client_ref", "organisation", "forename", "surname", "date_of_birth", "year_of_birth", "postcode"),
        mandatory_ids=("organisation", "org_client_ref"), unique_key=("organisation", "org_client_ref"),
    ),
}

# The people-file id each activity row points at (third sector: two columns).
PERSON_ID = {
    "gp": ("gp_patient_id",),
    "hospital": ("hospital_patient_id",),
    "social_care": ("la_client_id",),
    "third_sector": ("organisation", "org_client_ref"),
}

ACTIVITY = {
    "gp": FileFields(
        ("gp_patient_id", "event_date", "code_system", "code", "value"),
        mandatory_ids=("gp_patient_id",),
        mandatory_dates=("event_date",),
        closed_codes={"code_system": ("SNOMED", "DMD")},
    ),
    "hospital": FileFields(
        ("episode_id", "hospital_patient_id", "setting", "start_date", "end_date", "admission_method",
         "primary_diagnosis", "secondary_diagnoses", "treatment_specialty", "referral_source"),
        mandatory_ids=("episode_id", "hospital_patient_id"), unique_key=("episode_id",),
        mandatory_dates=("start_date",), optional_dates=("end_date",),
        closed_codes={"setting": ("APC", "OP", "AE")},
    ),
    "social_care": FileFields(
        ("event_id", "la_client_id", "client_type", "event_type", "service_type", "primary_support_reason",
         "start_date", "end_date"),
        mandatory_ids=("event_id", "la_client_id"), unique_key=("event_id",),
        mandatory_dates=("start_date",), optional_dates=("end_date",),
        closed_codes={"client_type": ("Service User", "Carer"),
                      "event_type": ("Request", "Assessment", "Service", "Review")},
    ),
    "third_sector": FileFields(
        ("contact_id", "org_client_ref", "organisation", "contact_date", "contact_reason", "unpaid_carer"),
        mandatory_ids=("contact_id", "organisation", "org_client_ref"), unique_key=("contact_id",),
        mandatory_dates=("contact_date",),
        closed_codes={"unpaid_carer": ("Y", "N")}, optional_codes=("unpaid_carer",),
    ),
}
