"""Which residents each source holds, and how each of its records misstates their identity.

Every error kind of the spec's "What real extracts get wrong" list is applied here at a
configured rate; name and NHS-number errors are scaled by the person's ethnic group
(synthetic.group_error_factor), the way published linkage-bias studies report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linkage.config import SyntheticConfig
from linkage.synthetic.population import Population
from linkage.synthetic.strings import (
    ascii_fold,
    break_one_digit,
    compact_fields,
    partition,
    prefixed_ids,
    replace,
    typo,
    with_room_for,
)
from linkage.synthetic.vocab import FORENAME_VARIANTS, GROUPS, SUBGROUPS, SURNAME_VARIANTS

DUPLICATE_ERROR_FACTOR = 1.5  # a second record made elsewhere is copied less carefully
SELF_REPORTED_VARIANT_FACTOR = 2.0
ID_PREFIX = {"gp": "G", "hospital": "RX", "social_care": "LA", "third_sector": "C"}


@dataclass(frozen=True)
class SourceRecords:
    """A source's people records (file row order), with the true person of each."""

    source: str
    person: np.ndarray  # resident index of each record
    is_duplicate: np.ndarray  # the person's second record in this source
    local_id: np.ndarray
    forename: np.ndarray
    middle_names: np.ndarray
    surname: np.ndarray
    dob: np.ndarray  # datetime64[D] as recorded (errors applied)
    postcode: np.ndarray  # "" = missing
    nhs_number: np.ndarray  # "" = missing

    def __post_init__(self) -> None:
        compact_fields(self)

    @property
    def size(self) -> int:
        return len(self.person)


def coverage_weight(pop: Population, source: str, is_carer: np.ndarray) -> np.ndarray:
    """Relative chance of a resident being in a source: hospitals see the old and the very young more."""
    age = pop.age
    if source == "hospital":
        return np.select([age < 5, age < 18, age < 50, age < 70], [1.3, 0.6, 0.8, 1.3], 2.0)
    if source == "social_care":
        return np.select([age < 18, age < 65, age < 80], [0.5, 0.6, 2.0], 4.5) * np.where(is_carer, 2.0, 1.0)
    if source == "third_sector":
        return np.where(age < 16, 0.0, 1.0) * np.where(is_carer, 5.0, 1.0)
    return np.ones(pop.size)


def select_records(
    pop: Population, source: str, config: SyntheticConfig, is_carer: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Residents in the source (age-weighted to the configured coverage) plus their duplicate records."""
    weight = coverage_weight(pop, source, is_carer)
    chance = np.clip(config.coverage[source] * weight / weight.mean(), 0.0, 1.0)
    covered = np.flatnonzero(rng.random(pop.size) < chance)
    twice = covered[rng.random(len(covered)) < config.duplicate_rate[source]]
    person = np.concatenate([covered, twice])
    is_duplicate = np.concatenate([np.zeros(len(covered), bool), np.ones(len(twice), bool)])
    order = rng.permutation(len(person))  # file order says nothing about people or households
    return person[order], is_duplicate[order]


def make_records(
    pop: Population, source: str, config: SyntheticConfig, is_carer: np.ndarray, rng: np.random.Generator
) -> SourceRecords:
    person, is_duplicate = select_records(pop, source, config, is_carer, rng)
    n = len(person)
    rates = _Rates(config, pop, person, is_duplicate)

    forename = pop.forename[person].astype("U40")
    surname = pop.surname[person].astype("U40")
    middle = pop.middle_names[person].astype("U40")
    # Married women: sources that saw her before the marriage may still hold her maiden surname.
    maiden = pop.maiden_surname[person]
    maiden_rate = rates.plain("maiden_surname") * (0.2 if source == "gp" else 1.0)
    use_maiden = (maiden != "") & (rng.random(n) < maiden_rate)
    surname = np.where(use_maiden, maiden, surname)
    surname = _drop_surname_part(surname, rates.plain("surname_part_dropped"), rng)
    # Self-reported names (third sector) use the short form more often.
    variant_rate = rates.name("forename_variant") * (
        SELF_REPORTED_VARIANT_FACTOR if source == "third_sector" else 1.0
    )
    forename = _swap_variants(forename, FORENAME_VARIANTS, np.clip(variant_rate, 0, 1), rng)
    surname = _swap_variants(surname, SURNAME_VARIANTS, rates.name("surname_variant"), rng)
    forename = _fold_some(forename, rates.plain("diacritics_stripped"), rng)
    surname = _fold_some(surname, rates.plain("diacritics_stripped"), rng)
    forename = _typo_some(forename, rates.name("name_typo"), rng)
    surname = _typo_some(surname, rates.name("name_typo"), rng)
    swap = rng.random(n) < rates.name("name_swap")
    forename, surname = np.where(swap, surname, forename), np.where(swap, forename, surname)

    dob = _misrecord_dob(pop.dob[person], rates, rng, np.datetime64(pop.reference_date, "D"))

    moved = pop.old_postcode[person] != ""
    stale_rate = 1.0 if source == "gp" else rates.plain("postcode_stale")
    stale = moved & (rng.random(n) < stale_rate) & (is_duplicate | (source != "gp"))
    postcode = np.where(stale, pop.old_postcode[person], pop.postcode[person])
    no_space = rng.random(n) < rates.plain("postcode_no_space")
    postcode = np.where(no_space, replace(postcode, " ", ""), postcode)
    lower = rng.random(n) < rates.plain("postcode_lower")
    postcode = np.where(lower, np.strings.lower(postcode), postcode)

    nhs = _misrecord_nhs(pop, person, source, config, rates, rng)
    prefix = ID_PREFIX[source]
    local_id = prefixed_ids(prefix, rng.choice(10**8, size=n, replace=False), 8)
    return SourceRecords(
        source, person, is_duplicate, local_id, forename, middle, surname, dob, postcode, nhs
    )


class _Rates:
    """Per-record error rates: base rate x error_rate_scale (x group factor for names and NHS numbers)."""

    def __init__(
        self, config: SyntheticConfig, pop: Population, person: np.ndarray, is_duplicate: np.ndarray
    ):
        self.config = config
        group_factor = np.array([config.group_error_factor[g] for g in GROUPS])
        group_index = np.array([GROUPS.index(s.group) for s in SUBGROUPS])
        self.group_factor = group_factor[group_index[pop.subgroup[person]]]
        self.duplicate_factor = np.where(is_duplicate, DUPLICATE_ERROR_FACTOR, 1.0)

    def plain(self, kind: str) -> np.ndarray:
        return np.clip(
            self.config.error_rates[kind] * self.config.error_rate_scale * self.duplicate_factor, 0, 1
        )

    def name(self, kind: str) -> np.ndarray:
        return np.clip(self.plain(kind) * self.group_factor, 0, 1)


def _swap_variants(
    values: np.ndarray, table: dict[str, tuple[str, ...]], rate: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Replace a name by one of its variants (nickname, spelling, transliteration) at the given rate."""
    chosen = np.flatnonzero(rng.random(len(values)) < rate)
    picks = rng.integers(0, 1 << 30, len(chosen))
    out = with_room_for(values, np.array([v for variants in table.values() for v in variants]))
    subset = values[chosen]
    for name, variants in table.items():  # a loop over the variant table, not over people
        hit = np.flatnonzero(subset == name)
        if len(hit):
            out[chosen[hit]] = np.array(variants)[picks[hit] % len(variants)]
    return out


def _fold_some(values: np.ndarray, rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    chosen = np.flatnonzero(rng.random(len(values)) < rate)
    folded = ascii_fold(values[chosen])
    out = with_room_for(values, folded)
    out[chosen] = folded
    return out


def _typo_some(values: np.ndarray, rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    chosen = np.flatnonzero(rng.random(len(values)) < rate)
    typed = typo(values[chosen], rng)
    out = with_room_for(values, typed)
    out[chosen] = typed
    return out


def _drop_surname_part(surname: np.ndarray, rate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Double-barrelled surnames recorded as one part, or with the hyphen changed or dropped."""
    # Arabic article prefixes (Al-, El-) are not double-barrelled: their variants are in SURNAME_VARIANTS.
    hyphen = np.strings.find(surname, "-") > 2
    space = np.strings.find(surname, " ") > 2
    chosen = (hyphen | space) & (rng.random(len(surname)) < rate)
    sep = np.where(hyphen, "-", " ")
    first = np.where(hyphen, partition(surname, "-")[0], partition(surname, " ")[0])
    last = np.where(hyphen, partition(surname, "-")[2], partition(surname, " ")[2])
    other_sep = np.where(sep == "-", " ", "-")
    form = rng.integers(0, 4, len(surname))
    variant = np.select(
        [form == 0, form == 1, form == 2],
        [first, last, np.strings.add(np.strings.add(first, other_sep), last)],
        np.strings.add(first, last),
    )
    return np.where(chosen, variant, surname)


def _misrecord_dob(
    dob: np.ndarray, rates: _Rates, rng: np.random.Generator, today: np.datetime64
) -> np.ndarray:
    """Day and month swapped, 1 January placeholder, one year digit wrong."""
    n = len(dob)
    year = dob.astype("M8[Y]").astype(int) + 1970
    month = dob.astype("M8[M]").astype(int) % 12 + 1
    day = (dob - dob.astype("M8[M]")).astype(int) + 1
    swap = (rng.random(n) < rates.plain("dob_day_month_swap")) & (day <= 12) & (day != month)
    month, day = np.where(swap, day, month), np.where(swap, month, day)
    placeholder = rng.random(n) < rates.plain("dob_placeholder")
    month = np.where(placeholder, 1, month)
    day = np.where(placeholder, 1, day)
    wrong_year = rng.random(n) < rates.plain("dob_year_digit")
    tens = rng.random(n) < 0.3
    digit_shift = rng.integers(1, 10, n)
    last = (year % 10 + digit_shift) % 10 + year // 10 * 10
    ten = ((year // 10) % 10 + digit_shift) % 10 * 10 + year // 100 * 100 + year % 10
    new_year = np.where(tens, ten, last)
    max_year = today.astype("M8[Y]").astype(int) + 1970
    new_year = np.where(new_year > max_year, year - 1, new_year)
    year = np.where(wrong_year, new_year, year)
    recorded = _compose_date(year, month, day)
    # A swap or a wrong digit that lands after the extract date is left out: future dates are malformed rows.
    return np.where(recorded > today, dob, recorded)


def _compose_date(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Date from parts; a 29 February moved to a non-leap year becomes the 28th."""
    month_start = (year - 1970).astype("M8[Y]").astype("M8[M]") + (month - 1).astype("m8[M]")
    month_length = (
        (month_start + np.timedelta64(1, "M")).astype("M8[D]") - month_start.astype("M8[D]")
    ).astype(int)
    return month_start.astype("M8[D]") + (np.minimum(day, month_length) - 1).astype("m8[D]")


def _misrecord_nhs(
    pop: Population,
    person: np.ndarray,
    source: str,
    config: SyntheticConfig,
    rates: _Rates,
    rng: np.random.Generator,
) -> np.ndarray:
    """NHS number missing (more often for some groups), one digit wrong, or a family member's."""
    n = len(person)
    # Normalised so the source's overall presence is the configured one; the groups differ around it.
    relative = rates.group_factor / rates.group_factor.mean() if n else rates.group_factor
    missing_rate = np.clip((1.0 - config.nhs_number_present[source]) * relative, 0, 1)
    present = rng.random(n) >= missing_rate
    nhs = pop.nhs_number[person]
    family = (pop.household_size[person] > 1) & (rng.random(n) < rates.name("nhs_family_member"))
    relative = pop.household_start[person] + (pop.member[person] + 1) % pop.household_size[person]
    nhs = np.where(family, pop.nhs_number[relative], nhs)
    wrong = np.flatnonzero(rng.random(n) < rates.plain("nhs_wrong_digit"))
    nhs[wrong] = break_one_digit(nhs[wrong], rng)
    return np.where(present, nhs, "")
