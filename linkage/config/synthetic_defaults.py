"""The synthetic generator's realism defaults: data, kept apart from the models that validate them.

SyntheticConfig (linkage.config.models) takes each mapping as the default of its field, and a
partial mapping in a file or --set overrides only the keys it gives.
"""

from __future__ import annotations

from datetime import date

# The synthetic world's "today". Cohorts' index date and link QA's reference date default to it
# too, so that a generated extract's truth, its cohorts and its truth metrics agree.
SYNTHETIC_REFERENCE_DATE = date(2026, 6, 30)
SYNTHETIC_COVERAGE = {"gp": 0.97, "hospital": 0.40, "social_care": 0.09, "third_sector": 0.05}
SYNTHETIC_NHS_PRESENT = {"gp": 0.98, "hospital": 0.95, "social_care": 0.60, "third_sector": 0.0}
SYNTHETIC_DUPLICATE_RATE = {"gp": 0.01, "hospital": 0.03, "social_care": 0.03, "third_sector": 0.02}
SYNTHETIC_DMY_DOB_SHARE = {"gp": 0.0, "hospital": 0.35, "social_care": 0.0, "third_sector": 0.85}
SYNTHETIC_ERROR_RATES = {  # per record, before error_rate_scale and group_error_factor
    "name_typo": 0.02,
    "forename_variant": 0.05,  # nickname / short form / transliteration
    "surname_variant": 0.03,  # transliteration, Mc/Mac, apostrophe forms
    "name_swap": 0.005,
    "surname_part_dropped": 0.3,  # of double-barrelled surnames
    "maiden_surname": 0.3,  # of married women's records outside GP
    "diacritics_stripped": 0.5,  # of names with diacritics or apostrophes
    "dob_day_month_swap": 0.006,
    "dob_placeholder": 0.004,
    "dob_year_digit": 0.006,
    "postcode_no_space": 0.05,
    "postcode_lower": 0.02,
    "postcode_stale": 0.3,  # of movers' records outside GP
    "nhs_wrong_digit": 0.004,
    "nhs_family_member": 0.002,
}
SYNTHETIC_GROUP_ERROR_FACTOR = {"White": 1.0, "Mixed": 1.2, "Asian": 1.4, "Black": 1.3, "Other": 1.4}
SYNTHETIC_CONDITION_RATES = {
    "shielding": 0.04,
    "shielding_lower_risk": 0.06,
    "cyp_mental_health": 0.10,
    "mental_health_other_age": 0.02,
    "unpaid_carers": 0.07,
    "carer_ended": 0.2,
    "cancer_referral": 0.02,
    "cancer_diagnosed": 0.35,
    "asthma": 0.08,
    "asthma_resolved": 0.1,
    "asthma_no_recent_treatment": 0.25,
    "hypertension": 0.15,
    "hypertension_resolved": 0.08,
    "mmr1": 0.92,
    "mmr2": 0.88,
    "preschool_booster": 0.86,
}
SYNTHETIC_RATE_DEFAULTS = {
    "coverage": SYNTHETIC_COVERAGE,
    "nhs_number_present": SYNTHETIC_NHS_PRESENT,
    "duplicate_rate": SYNTHETIC_DUPLICATE_RATE,
    "dmy_dob_share": SYNTHETIC_DMY_DOB_SHARE,
    "error_rates": SYNTHETIC_ERROR_RATES,
    "group_error_factor": SYNTHETIC_GROUP_ERROR_FACTOR,
    "condition_rates": SYNTHETIC_CONDITION_RATES,
}
