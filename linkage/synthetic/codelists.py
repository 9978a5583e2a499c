"""The codelists the generator writes evidence with: the same files the cohort builder reads."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from linkage.errors import InputError

REQUIRED = (
    "shielding_high_risk",
    "shielding_lower_risk",
    "mental_health_referral",
    "antidepressants",
    "self_harm_icd10",
    "carer_gp",
    "carer_ended_gp",
    "cancer_usc_referral",
    "cancer_diagnosis_icd10",
    "cancer_treatment_specialty",
    "asthma_diagnosis",
    "asthma_resolved",
    "asthma_treatment",
    "hypertension_diagnosis",
    "hypertension_resolved",
    "mmr_vaccination",
    "preschool_booster",
)
_ICD10_RANGE = re.compile(r"^([A-Z])(\d{2})-\1(\d{2})$")


def read_codelists(folder: Path) -> dict[str, tuple[str, ...]]:
    """Codes of every required list, in file order; a missing file or column is an InputError."""
    lists: dict[str, tuple[str, ...]] = {}
    for name in REQUIRED:
        path = Path(folder) / f"{name}.csv"
        if not path.exists():
            raise InputError(f"{path}: codelist not found (needed by the synthetic generator)")
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            if "code" not in (reader.fieldnames or []):
                raise InputError(f"{path}: no 'code' column")
            codes = tuple(row["code"].strip() for row in reader if row["code"] and row["code"].strip())
        if not codes:
            raise InputError(f"{path}: codelist is empty")
        lists[name] = codes
    return lists


def icd10_codes(
    entries: tuple[str, ...], count: int, rng: np.random.Generator, fourth_char_share: float = 0.7
) -> np.ndarray:
    """Real-looking ICD-10 codes inside the list's ranges (X60-X84 -> X61, X78.0): dotted form, 3 or 4 characters."""
    categories = []
    for entry in entries:
        match = _ICD10_RANGE.match(entry)
        if match:
            letter, low, high = match.group(1), int(match.group(2)), int(match.group(3))
            categories.extend(f"{letter}{number:02d}" for number in range(low, high + 1))
        else:
            categories.append(entry)
    picked = np.array(categories)[rng.integers(0, len(categories), count)]
    fourth = np.strings.add(".", rng.integers(0, 10, count).astype(str))
    can_extend = np.strings.str_len(picked) == 3
    return np.where(
        can_extend & (rng.random(count) < fourth_char_share), np.strings.add(picked, fourth), picked
    )
