"""Generator profiles: the families and messy worlds differ from the default where they say they do (no Spark)."""

from __future__ import annotations

import numpy as np
import pytest
from builders import CODELISTS, read

from linkage.config import SyntheticConfig
from linkage.synthetic import generate_extract
from linkage.synthetic.profiles import two_wrong_digits
from linkage.synthetic.strings import nhs_check_digit

PEOPLE = 1500


def passes_modulus_11(number: str) -> bool:
    check = nhs_check_digit(np.array([int(number[:9])]))[0]
    return check != 10 and int(number[9]) == check


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    root = tmp_path_factory.mktemp("profiles")
    for profile in ("default", "families", "messy"):
        generate_extract(SyntheticConfig(people=PEOPLE, seed=3, profile=profile), root / profile, CODELISTS)
    return {
        profile: (read(root / profile, "gp_patients"), read(root / profile, "truth"))
        for profile in ("default", "families", "messy")
    }


def test_two_wrong_digits_gives_another_valid_number_two_digits_apart():
    numbers = np.array(["9434765919", "4010232137", "6000000000"])
    changed = two_wrong_digits(numbers, np.random.default_rng(1))
    for before, after in zip(numbers, changed, strict=True):
        assert passes_modulus_11(after)
        differing = sum(a != b for a, b in zip(before, after, strict=True))
        assert after == before or differing == 2  # kept only where the new check digit would be 10


def test_families_has_rare_names_and_valid_numbers_shared_by_two_people(extracts):
    default_gp, _ = extracts["default"]
    families_gp, families_truth = extracts["families"]

    def top30_share(gp):
        return gp["forename"].value_counts().head(30).sum() / len(gp)

    assert top30_share(families_gp) < 0.3 < top30_share(default_gp)  # most people carry no top-30 name
    people_per_number = (
        families_gp.merge(families_truth, left_on="gp_patient_id", right_on="source_record_id")
        .query("nhs_number != ''")
        .groupby("nhs_number")["true_person_id"]
        .nunique()
    )
    shared = people_per_number[people_per_number > 1].index
    assert len(shared) >= 3 and all(passes_modulus_11(n) for n in shared)


def test_messy_misses_more_dates_of_birth_and_nhs_numbers(extracts):
    default_gp, _ = extracts["default"]
    messy_gp, _ = extracts["messy"]
    assert (default_gp["date_of_birth"] == "").mean() == 0 < (messy_gp["date_of_birth"] == "").mean()
    assert (messy_gp["nhs_number"] == "").mean() > 2 * (default_gp["nhs_number"] == "").mean()
