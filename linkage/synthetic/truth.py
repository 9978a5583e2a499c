"""Truth files: who each people-file record really is, and which conditions the written activity shows.

Condition truth is read back from the activity rows that were written (joined to the true
person), with the rules the cohort builder is asked to apply, so a truth row exists only when
the evidence is in some source's activity file. Dates are the earliest date a condition holds.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from linkage.synthetic.population import Population
from linkage.synthetic.records import SourceRecords

CONDITIONS = (
    "shielding",
    "cyp_mental_health",
    "unpaid_carers",
    "cancer",
    "asthma",
    "hypertension",
    "mmr1",
    "mmr2",
    "preschool_booster",
)
CYP_AGES = (11, 25)  # inclusive, age in whole years at the index date
ASTHMA_TREATMENT_DAYS = 365  # a treatment issue in the 12 months before the index date
SELF_HARM_PATTERN = r"(?:^|\|)X(?:6[0-9]|7[0-9]|8[0-4])"


def truth_people(
    pop: Population, records: dict[str, SourceRecords], record_ids: dict[str, np.ndarray]
) -> pd.DataFrame:
    """One row per people-file record: its key, true person and the attributes QA breaks results down by."""
    frames = []
    birth_year = pop.dob.astype("M8[Y]").astype(int) + 1970
    person_ids = pop.person_ids
    group = pop.ethnic_group
    for source, recs in records.items():
        person = recs.person
        frames.append(
            pd.DataFrame(
                {
                    "source_dataset": source,
                    "source_record_id": record_ids[source],
                    "true_person_id": person_ids[person],
                    "ethnic_group": group[person],
                    "sex": pop.sex[person],
                    "birth_year": birth_year[person],
                    "imd_decile": pop.imd_decile[person],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def truth_conditions(
    pop: Population,
    records: dict[str, SourceRecords],
    activity: dict[str, dict[str, np.ndarray]],
    codes: dict[str, tuple[str, ...]],
    index_date: date,
) -> pd.DataFrame:
    """(true_person_id, condition, date) for every condition the activity files show, sorted."""
    today = np.datetime64(index_date, "D")
    gp = _frame(activity["gp"], records["gp"], "event_date", today, ["code"])
    hospital = _frame(
        activity["hospital"],
        records["hospital"],
        "start_date",
        today,
        ["setting", "primary_diagnosis", "secondary_diagnoses", "referral_source"],
    )
    social = _frame(
        activity["social_care"],
        records["social_care"],
        "start_date",
        today,
        ["client_type", "primary_support_reason"],
    )
    third = _frame(activity["third_sector"], records["third_sector"], "contact_date", today, ["unpaid_carer"])

    def coded(list_name: str) -> pd.DataFrame:
        return gp[gp["code"].isin(codes[list_name])]

    found: dict[str, pd.Series] = {}
    found["shielding"] = _first(coded("shielding_high_risk"))

    self_harm = hospital[
        (hospital["setting"] == "APC")
        & (
            hospital["primary_diagnosis"].str.contains(SELF_HARM_PATTERN, regex=True)
            | hospital["secondary_diagnoses"].str.contains(SELF_HARM_PATTERN, regex=True)
        )
    ]
    mental_health = pd.concat(
        [
            coded("mental_health_referral"),
            coded("antidepressants"),
            self_harm,
            social[social["primary_support_reason"] == "Mental health support"],
        ]
    )
    young = (pop.age >= CYP_AGES[0]) & (pop.age <= CYP_AGES[1])
    mh_first = _first(mental_health)
    found["cyp_mental_health"] = mh_first[young[mh_first.index.to_numpy()]]

    carer_first = _first(coded("carer_gp"))
    carer_last = coded("carer_gp").groupby("person")["date"].max()
    ended_last = coded("carer_ended_gp").groupby("person")["date"].max().reindex(carer_last.index)
    gp_carer = carer_first[~(ended_last > carer_last)]
    found["unpaid_carers"] = (
        pd.concat(
            [
                gp_carer,
                _first(social[social["client_type"] == "Carer"]),
                _first(third[third["unpaid_carer"] == "Y"]),
            ]
        )
        .groupby(level=0)
        .min()
    )

    found["cancer"] = _first(hospital[(hospital["setting"] == "OP") & (hospital["referral_source"] == "2WW")])

    asthma_first = _first(coded("asthma_diagnosis"))
    asthma_last = coded("asthma_diagnosis").groupby("person")["date"].max()
    asthma_resolved = coded("asthma_resolved").groupby("person")["date"].max().reindex(asthma_last.index)
    treatment = coded("asthma_treatment")
    recent = treatment[treatment["date"] > today - np.timedelta64(ASTHMA_TREATMENT_DAYS, "D")]
    treated = asthma_first.index.isin(recent["person"].unique())
    found["asthma"] = asthma_first[~(asthma_resolved > asthma_last).to_numpy() & treated]

    hyp_first = _first(coded("hypertension_diagnosis"))
    hyp_last = coded("hypertension_diagnosis").groupby("person")["date"].max()
    hyp_resolved = coded("hypertension_resolved").groupby("person")["date"].max().reindex(hyp_last.index)
    found["hypertension"] = hyp_first[~(hyp_resolved > hyp_last).to_numpy()]

    # MMR: the first and second distinct dates of any MMR code ("dose by order of date").
    mmr_dates = coded("mmr_vaccination")[["person", "date"]].drop_duplicates().sort_values(["person", "date"])
    dose = mmr_dates.groupby("person").cumcount()
    found["mmr1"] = mmr_dates[dose == 0].set_index("person")["date"]
    found["mmr2"] = mmr_dates[dose == 1].set_index("person")["date"]
    found["preschool_booster"] = _first(coded("preschool_booster"))

    person_ids = pop.person_ids
    frames = [
        pd.DataFrame(
            {
                "true_person_id": person_ids[series.index.to_numpy()],
                "condition": name,
                "date": series.to_numpy().astype("M8[D]"),
            }
        )
        for name, series in ((n, found[n]) for n in CONDITIONS)
    ]
    result = pd.concat(frames, ignore_index=True)
    return result.sort_values(["condition", "true_person_id"], kind="stable").reset_index(drop=True)


def _frame(
    columns: dict[str, np.ndarray],
    recs: SourceRecords,
    date_column: str,
    today: np.datetime64,
    keep: list[str],
) -> pd.DataFrame:
    """The columns the rules read, with the true person and the row's date; rows after the index date dropped."""
    frame = pd.DataFrame({name: columns[name] for name in keep})
    frame["person"] = recs.person[columns["record"]]
    frame["date"] = columns[date_column]
    return frame[frame["date"] <= today]


def _first(rows: pd.DataFrame) -> pd.Series:
    return rows.groupby("person")["date"].min()
