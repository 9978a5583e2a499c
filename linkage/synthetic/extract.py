"""Build the eight extract files of source-extracts.md and the two truth files, and write them as CSV."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from linkage import sources as registry
from linkage.config import AppConfig, ColumnMapping, SyntheticConfig
from linkage.errors import InputError
from linkage.synthetic import profiles
from linkage.synthetic.activity import make_activity, organisation_of
from linkage.synthetic.codelists import read_codelists
from linkage.synthetic.population import Population, make_population
from linkage.synthetic.records import SourceRecords, make_records
from linkage.synthetic.strings import prefixed_ids
from linkage.synthetic.truth import truth_conditions, truth_people
from linkage.synthetic.vocab import GP_NOISE_CODES, ICD10_NOISE, POOLS, SUBGROUPS
from linkage.synthetic.writer import (
    Malformed,
    decimals,
    integers,
    iso_dates,
    malformed_lines,
    mixed_dates,
    text,
    write_csv,
)

# The sources this generator simulates (the built-in ones of linkage.sources; a source registered later
# has no synthetic records).
GENERATED_SOURCES = ("gp", "hospital", "social_care", "third_sector")
FILES = {  # source -> (people file, activity file): the names its declaration gives, ingest.sources' defaults
    source: (registry.get(source).people_file, registry.get(source).activity_file)
    for source in GENERATED_SOURCES
}
TRUTH_FILE, TRUTH_CONDITIONS_FILE, MALFORMED_FILE = "truth.csv", "truth_conditions.csv", "malformed_rows.csv"
# Independent random streams per stage: changing one stage leaves the others' draws alone.
STAGES = ("population", "carers", "gp", "hospital", "social_care", "third_sector", "activity", "files")
CARER_AGE = 16
STAGING_DIR = ".synthetic-partial"
SYNTHETIC_MARKER = (
    ".linkage-synthetic"  # says the folder's files are generated, so regenerating may replace them
)


def extract_stems(sources: Mapping[str, ColumnMapping]) -> list[str]:
    """The people and activity file names (without extension) that `ingest.sources` expects."""
    return [stem for mapping in sources.values() for stem in (mapping.people_file, mapping.activity_file)]


def extract_files_found(raw_dir: Path, stems: Sequence[str]) -> dict[str, list[str]]:
    """Per expected file name: the files present for it in raw_dir (`<stem>.csv` and/or `<stem>.parquet`)."""
    raw_dir = Path(raw_dir)
    return {
        stem: [f"{stem}.{fmt}" for fmt in ("csv", "parquet") if (raw_dir / f"{stem}.{fmt}").exists()]
        for stem in stems
    }


def extract_present(raw_dir: Path, sources: Mapping[str, ColumnMapping] | None = None) -> bool:
    """True when every people/activity file `ingest.sources` names (default: the names every registered
    source declares) is in raw_dir (as CSV or Parquet)."""
    stems = (
        extract_stems(sources)
        if sources is not None
        else [
            name for source in registry.declarations() for name in (source.people_file, source.activity_file)
        ]
    )
    return all(extract_files_found(raw_dir, stems).values())


def generated_file_names() -> list[str]:
    """Every file the generator writes into its folder."""
    return [
        *(f"{name}.csv" for pair in FILES.values() for name in pair),
        TRUTH_FILE,
        TRUTH_CONDITIONS_FILE,
        MALFORMED_FILE,
    ]


def generate_raw_extract(config: AppConfig, out_dir: Path | None = None) -> dict[str, int]:
    """What jobs/generate.py calls: synthetic.* settings, written to out_dir or paths.raw.

    Refuses (InputError) a folder holding any file the generator would replace unless the
    generator wrote them (its marker file is there): a real extract is never overwritten.
    """
    target = Path(out_dir) if out_dir is not None else Path(config.paths.raw)
    in_the_way = sorted(name for name in generated_file_names() if (target / name).exists())
    if in_the_way and not (target / SYNTHETIC_MARKER).exists():
        raise InputError(
            f"{target}: holds {', '.join(in_the_way)} that this generator did not write: a synthetic "
            "extract is written only into an empty folder or over an earlier synthetic one (use --out)"
        )
    return generate_extract(config.synthetic, target, Path(config.cohorts.codelists))


def generate_extract(config: SyntheticConfig, out_dir: Path, codelists_dir: Path) -> dict[str, int]:
    """Write the 8 extract CSVs + truth.csv + truth_conditions.csv into out_dir; returns rows per file.

    Same config (seed, size, rates) gives byte-identical files. Malformed rows, when asked for,
    are listed in malformed_rows.csv (file, line, kind) and are not in truth.csv.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    codes = read_codelists(Path(codelists_dir))
    rng = {stage: np.random.default_rng([config.seed, i]) for i, stage in enumerate(STAGES)}

    config = profiles.profile_config(config)
    profile_rng = profiles.profile_rng(config)
    pop = profiles.reshape_population(
        make_population(config.people, config.reference_date, rng["population"]), config.profile, profile_rng
    )
    carer_weight = np.where((pop.age >= 40) & (pop.age < 70), 1.5, 1.0)
    carer_chance = np.clip(config.condition_rates["unpaid_carers"] * carer_weight, 0, 1)
    is_carer = (pop.age >= CARER_AGE) & (rng["carers"].random(pop.size) < carer_chance)
    records = {
        source: profiles.misrecord(
            make_records(pop, source, config, is_carer, rng[source]),
            pop,
            config.profile,
            profile_rng,
            config.group_error_factor,
        )
        for source in GENERATED_SOURCES
    }
    organisation = organisation_of(records["third_sector"], is_carer, rng["third_sector"])
    activity = make_activity(pop, records, is_carer, codes, config, rng["activity"])

    files_rng = rng["files"]
    people_tables = {
        "gp": _gp_patients(pop, records["gp"], files_rng),
        "hospital": _hospital_patients(pop, records["hospital"], config, files_rng),
        "social_care": _social_care_clients(pop, records["social_care"], files_rng),
        "third_sector": _third_sector_clients(records["third_sector"], organisation, config, files_rng),
    }
    activity_tables = {
        "gp": _gp_events(activity["gp"], records["gp"], files_rng),
        "hospital": _hospital_episodes(activity["hospital"], records["hospital"], files_rng),
        "social_care": _social_care_events(activity["social_care"], records["social_care"], files_rng),
        "third_sector": _third_sector_contacts(
            activity["third_sector"], records["third_sector"], organisation, files_rng
        ),
    }
    record_ids = {source: records[source].local_id for source in GENERATED_SOURCES}
    record_ids["third_sector"] = np.strings.add(
        np.strings.add(organisation, ":"), records["third_sector"].local_id
    )

    # Written to a staging folder and moved in at the end, extract files last, so a crash part-way never
    # leaves a folder that extract_present() would take for a complete extract.
    staging = out_dir / STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    counts: dict[str, int] = {}
    malformed: list[tuple[str, int, str]] = []
    specs = _malformed_specs(pop, files_rng)
    for source in GENERATED_SOURCES:
        for name, table in zip(FILES[source], (people_tables[source], activity_tables[source]), strict=True):
            bad = malformed_lines(table, specs[name], config.malformed_rows, config.reference_date, files_rng)
            written = write_csv(staging / f"{name}.csv", table, bad, bom=name in config.bom_files)
            malformed.extend((f"{name}.csv", line, kind) for line, kind in written)
            counts[name] = table.num_rows + len(bad)
    # Written: the tables' memory goes back before the truth files are built (a fifth of the peak at 5M people).
    del people_tables, activity_tables
    pa.default_memory_pool().release_unused()

    people = truth_people(pop, records, record_ids)
    conditions = truth_conditions(pop, records, activity, codes, config.reference_date)
    conditions["date"] = conditions["date"].dt.strftime("%Y-%m-%d")
    _write_frame(staging / TRUTH_FILE, people)
    _write_frame(staging / TRUTH_CONDITIONS_FILE, conditions)
    counts[TRUTH_FILE.removesuffix(".csv")] = len(people)
    counts[TRUTH_CONDITIONS_FILE.removesuffix(".csv")] = len(conditions)
    if config.malformed_rows:
        bad_table = pa.table(
            {
                "file": [m[0] for m in malformed],
                "line": [m[1] for m in malformed],
                "kind": [m[2] for m in malformed],
            }
        )
        pacsv.write_csv(bad_table, str(staging / MALFORMED_FILE))
        counts[MALFORMED_FILE.removesuffix(".csv")] = bad_table.num_rows
    _publish(staging, out_dir)
    return counts


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the staged files into out_dir: the marker, truth first, the eight extract files last."""
    (out_dir / SYNTHETIC_MARKER).write_text("written by linkage's synthetic generator\n", encoding="utf-8")
    (out_dir / MALFORMED_FILE).unlink(missing_ok=True)  # a manifest of an earlier run would mislead
    extract_files = {f"{name}.csv" for pair in FILES.values() for name in pair}
    for path in sorted(staging.iterdir(), key=lambda p: (p.name in extract_files, p.name)):
        os.replace(path, out_dir / path.name)
    staging.rmdir()


def _write_frame(path: Path, frame) -> None:
    pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), str(path))


# -- people files ----------------------------------------------------------------------------------


def _sometimes(values: np.ndarray, share: float, replacement, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(len(values)) < share, replacement, values)


def _ethnicity_codes(
    pop: Population, recs: SourceRecords, present: float, rng: np.random.Generator
) -> np.ndarray:
    """Recorded NHS ethnic category: often missing; some 'Z' (not stated) and '99' (not known)."""
    code = pop.ethnic_code[recs.person]
    draw = rng.random(recs.size)
    return np.select([draw < 0.04, draw < 0.07, draw < present], ["Z", "99", code], "")


def _gp_patients(pop: Population, recs: SourceRecords, rng: np.random.Generator) -> pa.Table:
    n, person = recs.size, recs.person
    today = np.datetime64(pop.reference_date, "D")
    day = np.timedelta64(1, "D")
    # Registration: the current record since some date; a duplicate is an older registration elsewhere.
    start = np.maximum(pop.dob[person], today - (rng.random(n) * 30 * 365).astype(np.int64) * day)
    left = rng.random(n) < 0.02
    end = np.where(
        left,
        start + ((today - start).astype(np.int64) * rng.random(n)).astype(np.int64) * day,
        np.datetime64("NaT"),
    )
    old_end = np.maximum(start - rng.integers(1, 60, n) * day, pop.dob[person])
    old_start = np.maximum(pop.dob[person], old_end - rng.integers(100, 15 * 365, n) * day)
    start = np.where(recs.is_duplicate, old_start, start)
    end = np.where(recs.is_duplicate, old_end, end)
    practices = np.unique(pop.practice_code)
    practice = np.where(
        recs.is_duplicate, practices[rng.integers(0, len(practices), n)], pop.practice_code[person]
    )
    sex = _sometimes(pop.sex[person], 0.003, "U", rng)
    imd = pop.imd_decile[person]
    return pa.table(
        {
            "gp_patient_id": text(recs.local_id),
            "nhs_number": text(recs.nhs_number),
            "forename": text(recs.forename),
            "middle_names": text(recs.middle_names),
            "surname": text(recs.surname),
            "date_of_birth": iso_dates(recs.dob),
            "sex": text(sex),
            "postcode": text(_blank(recs.postcode, 0.01, rng)),
            "practice_code": text(practice),
            "registration_start": iso_dates(start),
            "registration_end": iso_dates(end),
            "ethnicity": text(_ethnicity_codes(pop, recs, 0.75, rng)),
            "imd_decile": integers(imd, rng.random(n) < 0.02),
        }
    )


def _hospital_patients(
    pop: Population, recs: SourceRecords, config: SyntheticConfig, rng: np.random.Generator
) -> pa.Table:
    n, person = recs.size, recs.person
    sex = np.where(pop.sex[person] == "M", "1", "2")
    draw = rng.random(n)
    sex = np.select([draw < 0.005, draw < 0.008], ["9", "0"], sex)
    upper = rng.random(n) < 0.4  # patient administration systems that store capitals
    forename = np.where(upper, np.strings.upper(recs.forename), recs.forename)
    surname = np.where(upper, np.strings.upper(recs.surname), recs.surname)
    # Missing NHS numbers: empty in some feeds, the literal NULL in others (both mean missing).
    nhs = np.where((recs.nhs_number == "") & (rng.random(n) < 0.5), "NULL", recs.nhs_number)
    return pa.table(
        {
            "hospital_patient_id": text(recs.local_id),
            "nhs_number": text(nhs),
            "forename": text(forename),
            "surname": text(surname),
            "date_of_birth": mixed_dates(recs.dob, rng.random(n) < config.dmy_dob_share["hospital"]),
            "sex": text(sex),
            "postcode": text(_blank(recs.postcode, 0.01, rng)),
            "ethnicity": text(_ethnicity_codes(pop, recs, 0.65, rng)),
        }
    )


SOCIAL_CARE_SEX_TEXT = {"M": ("male", "M", "MALE"), "F": ("female", "F", "FEMALE")}


def _social_care_clients(pop: Population, recs: SourceRecords, rng: np.random.Generator) -> pa.Table:
    n, person = recs.size, recs.person
    true_sex = pop.sex[person]
    sex = np.where(true_sex == "M", "Male", "Female")
    older_system = rng.random(n) < 0.06  # free text from an older case-management system
    pick = rng.integers(0, 3, n)
    free = np.where(
        true_sex == "M", np.array(SOCIAL_CARE_SEX_TEXT["M"])[pick], np.array(SOCIAL_CARE_SEX_TEXT["F"])[pick]
    )
    sex = np.where(older_system, free, sex)
    draw = rng.random(n)
    sex = np.select([draw < 0.015, draw < 0.02], ["Unknown", "Other"], sex)
    labels = np.array([s.label for s in SUBGROUPS])[pop.subgroup[person]]
    draw = rng.random(n)
    ethnicity = np.select(
        [draw < 0.40, draw < 0.70, draw < 0.75], [pop.ethnic_code[person], labels, "Not stated"], ""
    )
    return pa.table(
        {
            "la_client_id": text(recs.local_id),
            "nhs_number": text(recs.nhs_number),
            "forename": text(recs.forename),
            "surname": text(recs.surname),
            "date_of_birth": iso_dates(recs.dob),
            "sex": text(sex),
            "postcode": text(_blank(recs.postcode, 0.02, rng)),
            "ethnicity": text(ethnicity),
        }
    )


def _third_sector_clients(
    recs: SourceRecords, organisation: np.ndarray, config: SyntheticConfig, rng: np.random.Generator
) -> pa.Table:
    n = recs.size
    has_dob = rng.random(n) < config.third_sector_dob_present
    has_year = ~has_dob & (rng.random(n) < config.third_sector_year_only)
    dob = np.where(has_dob, recs.dob, np.datetime64("NaT"))
    year = recs.dob.astype("M8[Y]").astype(int) + 1970
    lower = rng.random(n) < 0.05  # self-reported, typed as given
    forename = np.where(lower, np.strings.lower(recs.forename), recs.forename)
    surname = np.where(lower, np.strings.lower(recs.surname), recs.surname)
    # Column order differs from the spec on purpose: readers match names, not positions.
    return pa.table(
        {
            "organisation": text(organisation),
            "org_client_ref": text(recs.local_id),
            "surname": text(surname),
            "forename": text(forename),
            "date_of_birth": mixed_dates(dob, rng.random(n) < config.dmy_dob_share["third_sector"]),
            "year_of_birth": integers(year, ~has_year),
            "postcode": text(_blank(recs.postcode, 0.35, rng)),
        }
    )


def _blank(values: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    return _sometimes(values, share, "", rng)


# -- activity files --------------------------------------------------------------------------------


def _shuffled(columns: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    order = rng.permutation(len(columns["record"]))
    return {name: values[order] for name, values in columns.items()}


def _ids(prefix: str, count: int, rng: np.random.Generator) -> np.ndarray:
    return prefixed_ids(prefix, rng.permutation(count) + 1, 9)


def _gp_events(columns, recs: SourceRecords, rng) -> pa.Table:
    c = _shuffled(columns, rng)
    return pa.table(
        {
            "gp_patient_id": text(recs.local_id[c["record"]]),
            "event_date": iso_dates(c["event_date"]),
            "code_system": text(c["code_system"]),
            "code": text(c["code"]),
            "value": decimals(c["value"]),
        }
    )


def _hospital_episodes(columns, recs: SourceRecords, rng) -> pa.Table:
    c = _shuffled(columns, rng)
    n = len(c["record"])
    return pa.table(
        {
            "episode_id": text(_ids("EP", n, rng)),
            "hospital_patient_id": text(recs.local_id[c["record"]]),
            "setting": text(c["setting"]),
            "start_date": iso_dates(c["start_date"]),
            "end_date": iso_dates(c["end_date"]),
            "admission_method": text(c["admission_method"]),
            "primary_diagnosis": text(c["primary_diagnosis"]),
            "secondary_diagnoses": text(c["secondary_diagnoses"]),
            "treatment_specialty": text(c["treatment_specialty"]),
            "referral_source": text(c["referral_source"]),
        }
    )


def _social_care_events(columns, recs: SourceRecords, rng) -> pa.Table:
    c = _shuffled(columns, rng)
    n = len(c["record"])
    return pa.table(
        {
            "event_id": text(_ids("SE", n, rng)),
            "la_client_id": text(recs.local_id[c["record"]]),
            "client_type": text(c["client_type"]),
            "event_type": text(c["event_type"]),
            "service_type": text(c["service_type"]),
            "primary_support_reason": text(c["primary_support_reason"]),
            "start_date": iso_dates(c["start_date"]),
            "end_date": iso_dates(c["end_date"]),
        }
    )


def _third_sector_contacts(columns, recs: SourceRecords, organisation: np.ndarray, rng) -> pa.Table:
    c = _shuffled(columns, rng)
    n = len(c["record"])
    return pa.table(
        {
            "contact_id": text(_ids("TC", n, rng)),
            "org_client_ref": text(recs.local_id[c["record"]]),
            "organisation": text(organisation[c["record"]]),
            "contact_date": iso_dates(c["contact_date"]),
            "contact_reason": text(c["contact_reason"]),
            "unpaid_carer": text(c["unpaid_carer"]),
        }
    )


# -- malformed rows --------------------------------------------------------------------------------


def _malformed_specs(pop: Population, rng: np.random.Generator) -> dict[str, Malformed]:
    """Malformed people rows carry made-up identities under ids no good row uses; activity rows carry noise codes."""
    names = POOLS["british"]
    # No postcode either: an accepted malformed row (e.g. a future DOB nulled) must not look like a real resident.
    junk = {"forename": list(names.female[-5:]), "surname": list(names.surnames[-5:]), "postcode": [""]}
    no_nhs = {"nhs_number": [""]}

    def bad_ids(prefix: str) -> list[str]:
        return [f"{prefix}M{k:07d}" for k in range(1, 1001)]

    noise_codes = [code for code, system, _ in GP_NOISE_CODES if system == "SNOMED"]
    return {
        "gp_patients": Malformed(
            "gp_patient_id", "date_of_birth", {"gp_patient_id": bad_ids("G"), **junk, **no_nhs}
        ),
        "hospital_patients": Malformed(
            "hospital_patient_id", "date_of_birth", {"hospital_patient_id": bad_ids("RX"), **junk, **no_nhs}
        ),
        "social_care_clients": Malformed(
            "la_client_id", "date_of_birth", {"la_client_id": bad_ids("LA"), **junk, **no_nhs}
        ),
        "third_sector_clients": Malformed(
            "org_client_ref", "date_of_birth", {"org_client_ref": bad_ids("C"), **junk}
        ),
        "gp_events": Malformed(
            "gp_patient_id", "event_date", {"code_system": ["SNOMED"], "code": noise_codes, "value": [""]}
        ),
        "hospital_episodes": Malformed(
            "episode_id",
            "start_date",
            {
                "episode_id": bad_ids("EP"),
                "setting": ["AE"],
                "primary_diagnosis": list(ICD10_NOISE[:4]),
                "secondary_diagnoses": [""],
                "treatment_specialty": ["180"],
                "referral_source": [""],
            },
        ),
        "social_care_events": Malformed(
            "event_id",
            "start_date",
            {
                "event_id": bad_ids("SE"),
                "client_type": ["Service User"],
                "primary_support_reason": ["Physical support"],
            },
        ),
        "third_sector_contacts": Malformed(
            "contact_id",
            "contact_date",
            {"contact_id": bad_ids("TC"), "contact_reason": ["Debt"], "unpaid_carer": ["N"]},
        ),
    }
