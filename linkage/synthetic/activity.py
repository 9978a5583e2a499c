"""Activity files: background events, condition evidence and the near misses a cohort must reject.

Evidence is only ever written for a person into a source that holds a record of them, on one
of their records there (a duplicate record may carry part of it), so a cohort that links
well can find it. The truth is then read back from these rows (linkage/synthetic/truth.py).
"""

from __future__ import annotations

from datetime import date

import numpy as np

from linkage.config import SyntheticConfig
from linkage.synthetic.codelists import icd10_codes
from linkage.synthetic.population import Population
from linkage.synthetic.records import SourceRecords
from linkage.synthetic.strings import compact, replace
from linkage.synthetic.vocab import (
    GP_NOISE_CODES,
    ICD10_NOISE,
    ORGANISATIONS,
    REFERRAL_NOISE,
    SOCIAL_CARE_REASONS,
    SOCIAL_CARE_SERVICES,
    SPECIALTY_NOISE,
    SYSTOLIC_BP_CODE,
    THIRD_SECTOR_REASONS,
)

DMD_LISTS = frozenset({"antidepressants", "asthma_treatment"})
HISTORY_YEARS = 10  # background activity spans this many years before the extract date
GP_EVENTS_PER_RECORD = 2.5
HOSPITAL_EPISODES_PER_RECORD = 1.3
SHIELDING_START = date(2020, 3, 20)
MENTAL_HEALTH_SUPPORT = "Mental health support"
CARER_SUPPORT = "Carer support"
DAY = np.timedelta64(1, "D")
YEAR_DAYS = 365
# Near misses: evidence-like rows a cohort must reject (shares of the people who could have them).
AE_SELF_HARM_RATE = 0.02
CANCER_WITHOUT_REFERRAL_RATE = 0.005

Columns = dict[str, np.ndarray]


class _Rows:
    """Chunks of rows for one activity file, concatenated once at the end."""

    def __init__(self, columns: dict[str, str]):
        self.columns = columns  # name -> numpy dtype of the column
        self.chunks: list[Columns] = []

    def add(self, record: np.ndarray, **values) -> None:
        keep = record >= 0  # evidence only lands where the person has a record
        if not keep.any():
            return
        n = len(record)
        chunk = {"record": record[keep]}
        for name, dtype in self.columns.items():
            value = values.get(name, _missing(dtype))
            array = np.broadcast_to(np.asarray(value, dtype=dtype), (n,))
            chunk[name] = array[keep]
        self.chunks.append(chunk)

    def build(self) -> Columns:
        names = ["record", *self.columns]
        if not self.chunks:
            return {"record": np.zeros(0, int)} | {k: np.zeros(0, d) for k, d in self.columns.items()}
        return {name: compact(np.concatenate([c[name] for c in self.chunks])) for name in names}


def _missing(dtype: str):
    if dtype.startswith("M8"):
        return np.datetime64("NaT")
    if dtype.startswith("f"):
        return np.nan
    return ""


GP_COLUMNS = {"event_date": "M8[D]", "code_system": "U6", "code": "U20", "value": "f8"}
HOSPITAL_COLUMNS = {
    "setting": "U3",
    "start_date": "M8[D]",
    "end_date": "M8[D]",
    "admission_method": "U2",
    "primary_diagnosis": "U8",
    "secondary_diagnoses": "U40",
    "treatment_specialty": "U4",
    "referral_source": "U10",
}
SOCIAL_CARE_COLUMNS = {
    "client_type": "U12",
    "event_type": "U10",
    "service_type": "U20",
    "primary_support_reason": "U40",
    "start_date": "M8[D]",
    "end_date": "M8[D]",
}
THIRD_SECTOR_COLUMNS = {"contact_date": "M8[D]", "contact_reason": "U20", "unpaid_carer": "U1"}


def make_activity(
    pop: Population,
    records: dict[str, SourceRecords],
    is_carer: np.ndarray,
    codes: dict[str, tuple[str, ...]],
    config: SyntheticConfig,
    rng: np.random.Generator,
) -> dict[str, Columns]:
    """All four activity files, as columns keyed by the row's people-file record index."""
    world = _World(pop, records, codes, config, rng)
    world.background()
    world.shielding()
    world.mental_health()
    world.carers(is_carer)
    world.cancer()
    world.asthma()
    world.hypertension()
    world.vaccinations()
    return {source: rows.build() for source, rows in world.rows.items()}


class _World:
    def __init__(
        self,
        pop: Population,
        records: dict[str, SourceRecords],
        codes: dict[str, tuple[str, ...]],
        config: SyntheticConfig,
        rng: np.random.Generator,
    ):
        self.pop, self.records, self.codes, self.config, self.rng = pop, records, codes, config, rng
        self.rates = config.condition_rates
        self.today = np.datetime64(config.reference_date, "D")
        self.rows = {
            "gp": _Rows(GP_COLUMNS),
            "hospital": _Rows(HOSPITAL_COLUMNS),
            "social_care": _Rows(SOCIAL_CARE_COLUMNS),
            "third_sector": _Rows(THIRD_SECTOR_COLUMNS),
        }
        self.present = {}
        for source, recs in records.items():
            mask = np.zeros(pop.size, bool)
            mask[recs.person] = True
            self.present[source] = mask
        self.first_record, self.second_record = {}, {}
        for source, recs in records.items():
            first, second = np.full(pop.size, -1), np.full(pop.size, -1)
            index = np.arange(recs.size)
            first[recs.person[~recs.is_duplicate]] = index[~recs.is_duplicate]
            second[recs.person[recs.is_duplicate]] = index[recs.is_duplicate]
            self.first_record[source], self.second_record[source] = first, second

    # -- helpers ----------------------------------------------------------------------------------
    def record(self, source: str, person: np.ndarray) -> np.ndarray:
        """The record each row lands on (-1 when absent); a duplicate record carries about a third."""
        second = self.second_record[source][person]
        use_second = (second >= 0) & (self.rng.random(len(person)) < 0.3)
        return np.where(use_second, second, self.first_record[source][person])

    def dates(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Uniform dates in [low, high] (high below low collapses to low)."""
        low = np.asarray(low, "M8[D]")
        span = np.maximum((np.asarray(high, "M8[D]") - low).astype(np.int64), 0)
        return low + (self.rng.random(np.broadcast(low, span).shape) * (span + 1)).astype(np.int64) * DAY

    def pick(self, values, count: int) -> np.ndarray:
        return np.asarray(values)[self.rng.integers(0, len(values), count)]

    def chosen(self, eligible: np.ndarray, rate: float, weight: np.ndarray | None = None) -> np.ndarray:
        """Indexes of eligible people drawn at `rate` (weighted, keeping the mean rate)."""
        weight = np.ones(self.pop.size) if weight is None else weight
        mean = weight[eligible].mean() if eligible.any() else 1.0
        chance = np.clip(rate * weight / mean, 0, 1)
        return np.flatnonzero(eligible & (self.rng.random(self.pop.size) < chance))

    def gp(self, person: np.ndarray, when: np.ndarray, list_name: str, value=np.nan) -> None:
        system = "DMD" if list_name in DMD_LISTS else "SNOMED"
        self.rows["gp"].add(
            self.record("gp", person),
            event_date=when,
            code_system=system,
            code=self.pick(self.codes[list_name], len(person)),
            value=value,
        )

    def history_start(self, person: np.ndarray) -> np.ndarray:
        return np.maximum(self.pop.dob[person], self.today - HISTORY_YEARS * YEAR_DAYS * DAY)

    # -- background ------------------------------------------------------------------------------
    def background(self) -> None:
        rng = self.rng
        gp = self.records["gp"]
        per = rng.poisson(GP_EVENTS_PER_RECORD, gp.size)
        rec = np.repeat(np.arange(gp.size), per)
        person = gp.person[rec]
        noise = [c for c in GP_NOISE_CODES if c[0] not in self._all_codes()]
        which = rng.integers(0, len(noise), len(rec))
        code = np.array([c[0] for c in noise])[which]
        has_value = np.array([c[2] for c in noise])[which]
        value = np.where(has_value, np.round(rng.normal(0, 1, len(rec)) * 15 + 125, 0), np.nan)
        value = np.where(code == "27113001", np.round(rng.normal(75, 14, len(rec)), 1), value)
        value = np.where(code == "60621009", np.round(rng.normal(27, 5, len(rec)), 1), value)
        self.rows["gp"].add(
            rec,
            event_date=self.dates(self.history_start(person), self.today),
            code_system=np.array([c[1] for c in noise])[which],
            code=code,
            value=value,
        )

        hospital = self.records["hospital"]
        per = rng.poisson(HOSPITAL_EPISODES_PER_RECORD, hospital.size) + (rng.random(hospital.size) < 0.6)
        rec = np.repeat(np.arange(hospital.size), per)
        n = len(rec)
        setting = self.pick(["APC", "APC", "OP", "OP", "OP", "AE", "AE"], n)
        start = self.dates(self.history_start(hospital.person[rec]), self.today)
        primary = np.where((setting == "OP") & (rng.random(n) < 0.6), "", self.pick(ICD10_NOISE, n))
        self.hospital_rows(
            rec,
            setting,
            start,
            primary,
            secondary=self.secondary_noise(n),
            specialty=self.pick(SPECIALTY_NOISE, n),
            referral=np.where(rng.random(n) < 0.5, self.pick(REFERRAL_NOISE, n), ""),
        )

        social = self.records["social_care"]
        per = rng.integers(1, 5, social.size)
        rec = np.repeat(np.arange(social.size), per)
        n = len(rec)
        start = self.dates(self.history_start(social.person[rec]), self.today)
        ongoing = rng.random(n) < 0.4
        end = np.where(
            ongoing, np.datetime64("NaT"), np.minimum(start + rng.integers(0, 400, n) * DAY, self.today)
        )
        self.rows["social_care"].add(
            rec,
            client_type="Service User",
            event_type=self.pick(["Request", "Assessment", "Service", "Review"], n),
            service_type=np.where(rng.random(n) < 0.7, self.pick(SOCIAL_CARE_SERVICES, n), ""),
            primary_support_reason=np.where(rng.random(n) < 0.85, self.pick(SOCIAL_CARE_REASONS, n), ""),
            start_date=start,
            end_date=end,
        )

        third = self.records["third_sector"]
        per = rng.integers(1, 4, third.size)
        rec = np.repeat(np.arange(third.size), per)
        n = len(rec)
        self.rows["third_sector"].add(
            rec,
            contact_date=self.dates(self.today - 3 * YEAR_DAYS * DAY, self.today),
            contact_reason=self.pick(THIRD_SECTOR_REASONS, n),
            unpaid_carer=np.where(rng.random(n) < 0.6, "N", ""),
        )

    def _all_codes(self) -> set[str]:
        return {code for codes in self.codes.values() for code in codes}

    def secondary_noise(self, n: int) -> np.ndarray:
        count = self.rng.integers(0, 3, n)
        first, second = self.pick(ICD10_NOISE, n), self.pick(ICD10_NOISE, n)
        both = np.strings.add(np.strings.add(first, "|"), second)
        return np.select([count == 1, count == 2], [first, both], "")

    def hospital_rows(
        self,
        rec: np.ndarray,
        setting: np.ndarray,
        start: np.ndarray,
        primary: np.ndarray,
        secondary: np.ndarray,
        specialty: np.ndarray,
        referral: np.ndarray,
    ) -> None:
        rng = self.rng
        n = len(rec)
        apc = setting == "APC"
        end = np.where(
            apc, np.minimum(start + rng.integers(0, 15, n) * DAY, self.today), np.datetime64("NaT")
        )
        method = np.where(apc, self.pick(["11", "12", "13", "21", "22", "28"], n), "")
        # Half the trusts write ICD-10 codes without the dot (J459 for J45.9): row by row here.
        undotted = rng.random(n) < 0.5
        primary = np.where(undotted, replace(primary, ".", ""), primary)
        secondary = np.where(undotted, replace(secondary, ".", ""), secondary)
        self.rows["hospital"].add(
            rec,
            setting=setting,
            start_date=start,
            end_date=end,
            admission_method=method,
            primary_diagnosis=primary,
            secondary_diagnoses=secondary,
            treatment_specialty=specialty,
            referral_source=np.where(apc, "", referral),
        )

    # -- conditions ------------------------------------------------------------------------------
    def shielding(self) -> None:
        pop = self.pop
        start = np.datetime64(SHIELDING_START, "D")
        born = pop.dob < start
        weight = np.where(pop.age >= 70, 3.0, 1.0)
        for list_name, rate in (
            ("shielding_high_risk", self.rates["shielding"]),
            ("shielding_lower_risk", self.rates["shielding_lower_risk"]),
        ):
            person = self.chosen(born & self.present["gp"], rate, weight)
            self.gp(person, self.dates(np.full(len(person), start), start + 70 * DAY), list_name)

    def mental_health(self) -> None:
        """CYP evidence for ages 11-25, and the same evidence at other ages (which cohorts must reject)."""
        pop, rng = self.pop, self.rng
        young = (pop.age >= 11) & (pop.age <= 25)
        other = ((pop.age >= 5) & (pop.age <= 10)) | ((pop.age >= 26) & (pop.age <= 45))
        person = np.concatenate(
            [
                self.chosen(young, self.rates["cyp_mental_health"]),
                self.chosen(other, self.rates["mental_health_other_age"]),
            ]
        )
        n = len(person)
        available = np.stack(
            [
                self.present["gp"][person],
                self.present["gp"][person] & (pop.age[person] >= 12),
                self.present["hospital"][person],
                self.present["social_care"][person],
            ],
            axis=1,
        )
        # Each person gets one kind of evidence from a source that holds them; 40% get a second (any kind).
        for round_ in range(2):
            score = np.where(available, rng.random((n, 4)), -1.0)
            kind = score.argmax(axis=1)
            has_kind = score.max(axis=1) >= 0
            if round_ == 1:
                has_kind &= rng.random(n) < 0.4
            when = self.dates(
                np.maximum(self.today - 3 * YEAR_DAYS * DAY, pop.dob[person] + 5 * YEAR_DAYS * DAY),
                self.today - DAY,
            )
            for k, emit in enumerate(
                (self._mh_referral, self._mh_antidepressant, self._mh_self_harm, self._mh_social_care)
            ):
                rows = has_kind & (kind == k)
                if rows.any():
                    emit(person[rows], when[rows])

        # Self-harm seen in A&E but not admitted: not APC, so not evidence (a near miss for the cohort).
        seen = self.chosen(young & self.present["hospital"], AE_SELF_HARM_RATE)
        k = len(seen)
        self.hospital_rows(
            self.record("hospital", seen),
            np.full(k, "AE"),
            self.dates(np.full(k, self.today - 2 * YEAR_DAYS * DAY), self.today - DAY),
            icd10_codes(self.codes["self_harm_icd10"], k, rng),
            np.full(k, ""),
            np.full(k, "180"),
            np.full(k, ""),
        )

    def _mh_referral(self, person, when) -> None:
        self.gp(person, when, "mental_health_referral")

    def _mh_antidepressant(self, person, when) -> None:
        issues = self.rng.integers(1, 4, len(person))
        person, when = np.repeat(person, issues), np.repeat(when, issues)
        when = np.minimum(when + self.rng.integers(0, 120, len(person)) * DAY, self.today)
        self.gp(person, when, "antidepressants")

    def _mh_self_harm(self, person, when) -> None:
        n = len(person)
        harm = icd10_codes(self.codes["self_harm_icd10"], n, self.rng)
        injury = self.pick(["T39.1", "T43.2", "S51.8", "T42.4"], n)
        in_primary = self.rng.random(n) < 0.5
        secondary = np.where(
            in_primary, self.secondary_noise(n), np.strings.add(np.strings.add(injury, "|"), harm)
        )
        self.hospital_rows(
            self.record("hospital", person),
            np.full(n, "APC"),
            when,
            np.where(in_primary, harm, injury),
            secondary,
            self.pick(["300", "180", "711"], n),
            np.full(n, ""),
        )

    def _mh_social_care(self, person, when) -> None:
        n = len(person)
        self.rows["social_care"].add(
            self.record("social_care", person),
            client_type="Service User",
            event_type=self.pick(["Assessment", "Service", "Review"], n),
            service_type=self.pick(["Day care", "Direct payment", ""], n),
            primary_support_reason=MENTAL_HEALTH_SUPPORT,
            start_date=when,
        )

    def carers(self, is_carer: np.ndarray) -> None:
        """Carers identified in GP (some later ended), social care Carer rows, or self-declared third sector."""
        rng, n = self.rng, self.pop.size
        identified = self.dates(np.full(n, self.today - 8 * YEAR_DAYS * DAY), self.today - 30 * DAY)
        identified = np.maximum(identified, self.pop.dob + 16 * YEAR_DAYS * DAY)
        in_gp = is_carer & self.present["gp"] & (rng.random(n) < 0.7)
        ended = in_gp & (rng.random(n) < self.rates["carer_ended"]) & (identified + 400 * DAY < self.today)
        person = np.flatnonzero(in_gp)
        self.gp(person, identified[person], "carer_gp")
        again = person[rng.random(len(person)) < 0.3]  # a later review re-records the carer code
        self.gp(
            again,
            self.dates(identified[again], np.minimum(identified[again] + 200 * DAY, self.today)),
            "carer_gp",
        )
        # Ended carers: the no-longer-a-carer code comes after every carer code; no other source says carer.
        stop = np.flatnonzero(ended)
        self.gp(stop, self.dates(identified[stop] + 201 * DAY, self.today - DAY), "carer_ended_gp")
        current = is_carer & ~ended
        in_sc = np.flatnonzero(current & self.present["social_care"] & (rng.random(n) < 0.8))
        k = len(in_sc)
        self.rows["social_care"].add(
            self.record("social_care", in_sc),
            client_type="Carer",
            event_type=self.pick(["Assessment", "Service", "Review"], k),
            service_type=CARER_SUPPORT,
            primary_support_reason="",
            start_date=self.dates(identified[in_sc], self.today),
        )
        in_ts = np.flatnonzero(current & self.present["third_sector"] & (rng.random(n) < 0.85))
        k = len(in_ts)
        self.rows["third_sector"].add(
            self.record("third_sector", in_ts),
            contact_date=self.dates(np.maximum(identified[in_ts], self.today - 3 * 365 * DAY), self.today),
            contact_reason=CARER_SUPPORT,
            unpaid_carer="Y",
        )

    def cancer(self) -> None:
        """2WW referral (OP), for some a C00-C97 diagnosis, then first treatment in an oncology specialty."""
        pop, rng = self.pop, self.rng
        weight = np.where(pop.age >= 50, 3.0, 1.0)
        person = self.chosen(
            self.present["hospital"] & (pop.age >= 30), self.rates["cancer_referral"], weight
        )
        n = len(person)
        referred = self.dates(np.full(n, self.today - 5 * YEAR_DAYS * DAY), self.today - 30 * DAY)
        self.hospital_rows(
            self.record("hospital", person),
            np.full(n, "OP"),
            referred,
            self.pick(["R19.0", "R59.0", "N63", "R31"], n),
            np.full(n, ""),
            self.pick(["101", "103", "301", "502", "340"], n),
            np.full(n, "2WW"),
        )
        diagnosed = rng.random(n) < self.rates["cancer_diagnosed"]
        person, referred = person[diagnosed], referred[diagnosed]
        n = len(person)
        diagnosis_date = np.minimum(referred + rng.integers(14, 60, n) * DAY, self.today)
        cancer_code = icd10_codes(self.codes["cancer_diagnosis_icd10"], n, rng)
        setting = np.where(rng.random(n) < 0.5, "OP", "APC")
        self.hospital_rows(
            self.record("hospital", person),
            setting,
            diagnosis_date,
            cancer_code,
            np.full(n, ""),
            self.pick(["101", "103", "301", "502", "340"], n),
            np.full(n, ""),
        )
        # Cancers found without a 2WW referral (e.g. an emergency admission): not in the referral cohort.
        found = self.chosen(self.present["hospital"] & (pop.age >= 30), CANCER_WITHOUT_REFERRAL_RATE)
        k = len(found)
        self.hospital_rows(
            self.record("hospital", found),
            np.full(k, "APC"),
            self.dates(np.full(k, self.today - 5 * YEAR_DAYS * DAY), self.today - DAY),
            icd10_codes(self.codes["cancer_diagnosis_icd10"], k, rng),
            np.full(k, ""),
            np.full(k, "300"),
            np.full(k, ""),
        )
        treated = rng.random(n) < 0.7
        person, diagnosis_date, cancer_code = person[treated], diagnosis_date[treated], cancer_code[treated]
        n = len(person)
        treatment_date = np.minimum(diagnosis_date + rng.integers(14, 90, n) * DAY, self.today)
        self.hospital_rows(
            self.record("hospital", person),
            np.full(n, "APC"),
            treatment_date,
            cancer_code,
            np.full(n, ""),
            self.pick(self.codes["cancer_treatment_specialty"], n),
            np.full(n, ""),
        )

    def asthma(self) -> None:
        """QOF register: diagnosis not resolved since, and a treatment issue in the 12 months before the index date."""
        pop, rng = self.pop, self.rng
        person = self.chosen(self.present["gp"] & (pop.age >= 3), self.rates["asthma"])
        n = len(person)
        diagnosed = self.dates(
            np.maximum(pop.dob[person] + 2 * YEAR_DAYS * DAY, self.today - 20 * YEAR_DAYS * DAY),
            self.today - 400 * DAY,
        )
        self.gp(person, diagnosed, "asthma_diagnosis")
        resolved = rng.random(n) < self.rates["asthma_resolved"]
        no_recent = ~resolved & (rng.random(n) < self.rates["asthma_no_recent_treatment"])
        stop = person[resolved]
        resolved_on = self.dates(diagnosed[resolved] + 60 * DAY, self.today - 30 * DAY)
        self.gp(stop, resolved_on, "asthma_resolved")
        # Issues: recent ones (within 11 months) only for the unresolved with treatment; old ones (15+ months) for all.
        self.gp(
            person, self.dates(diagnosed, np.maximum(diagnosed, self.today - 460 * DAY)), "asthma_treatment"
        )
        recent = person[~resolved & ~no_recent]
        issues = rng.integers(1, 4, len(recent))
        recent = np.repeat(recent, issues)
        self.gp(
            recent,
            self.dates(np.full(len(recent), self.today - 330 * DAY), self.today - DAY),
            "asthma_treatment",
        )
        # Inhalers without an asthma diagnosis (e.g. COPD): not on the register.
        other = self.chosen(self.present["gp"] & (pop.age >= 40), 0.01)
        self.gp(
            other,
            self.dates(np.full(len(other), self.today - 300 * DAY), self.today - DAY),
            "asthma_treatment",
        )

    def hypertension(self) -> None:
        pop, rng = self.pop, self.rng
        weight = np.select([pop.age < 45, pop.age < 65], [0.3, 1.2], 2.5)
        person = self.chosen(self.present["gp"] & (pop.age >= 30), self.rates["hypertension"], weight)
        n = len(person)
        diagnosed = self.dates(
            np.maximum(pop.dob[person] + 30 * YEAR_DAYS * DAY, self.today - 25 * YEAR_DAYS * DAY),
            self.today - 30 * DAY,
        )
        self.gp(person, diagnosed, "hypertension_diagnosis")
        readings = np.repeat(np.arange(n), rng.integers(1, 4, n))
        self.rows["gp"].add(
            self.record("gp", person[readings]),
            event_date=self.dates(diagnosed[readings], self.today),
            code_system="SNOMED",
            code=SYSTOLIC_BP_CODE,
            value=np.round(rng.normal(148, 12, len(readings)), 0),
        )
        resolved = (rng.random(n) < self.rates["hypertension_resolved"]) & (
            diagnosed < self.today - 120 * DAY
        )
        self.gp(
            person[resolved],
            self.dates(diagnosed[resolved] + 90 * DAY, self.today - DAY),
            "hypertension_resolved",
        )

    def vaccinations(self) -> None:
        """MMR1 at about 1 year, MMR2 and the pre-school booster at about 3 years 4 months; children only."""
        pop, rng = self.pop, self.rng
        child = self.present["gp"] & (pop.age >= 1) & (pop.age <= 10)
        mmr = self.codes["mmr_vaccination"]
        dose_code = "38598009" if "38598009" in mmr else mmr[0]
        second_code = "170433008" if "170433008" in mmr else mmr[-1]
        first_due = child & (pop.dob + 450 * DAY <= self.today)
        mmr1 = np.flatnonzero(first_due & (rng.random(pop.size) < self.rates["mmr1"]))
        given1 = pop.dob[mmr1] + rng.integers(365, 451, len(mmr1)) * DAY
        self.rows["gp"].add(self.record("gp", mmr1), event_date=given1, code_system="SNOMED", code=dose_code)
        second_due = pop.dob[mmr1] + 1400 * DAY <= self.today
        takes2 = second_due & (rng.random(len(mmr1)) < self.rates["mmr2"])
        mmr2 = mmr1[takes2]
        given2 = pop.dob[mmr2] + rng.integers(1220, 1401, len(mmr2)) * DAY
        code2 = np.where(rng.random(len(mmr2)) < 0.3, second_code, dose_code)
        self.rows["gp"].add(self.record("gp", mmr2), event_date=given2, code_system="SNOMED", code=code2)
        booster_due = child & (pop.dob + 1400 * DAY <= self.today)
        boost = np.flatnonzero(booster_due & (rng.random(pop.size) < self.rates["preschool_booster"]))
        boosted = pop.dob[boost] + rng.integers(1220, 1401, len(boost)) * DAY
        self.gp(boost, boosted, "preschool_booster")


def organisation_of(records: SourceRecords, is_carer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Third-sector organisation of each client record: carers mostly at the carers' centre."""
    carer = is_carer[records.person]
    other = np.array(ORGANISATIONS[1:])[rng.integers(0, len(ORGANISATIONS) - 1, records.size)]
    at_centre = (carer & (rng.random(records.size) < 0.8)) | (rng.random(records.size) < 0.15)
    return np.where(at_centre, ORGANISATIONS[0], other)
