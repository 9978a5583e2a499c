"""The synthetic resident population: households sharing a surname and address, twins, movers, marriages.

Everything is drawn array-wise from one numpy Generator, so the same seed and size give the
same people. Each person's true identity here is what the source records then misstate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from linkage.synthetic.strings import compact_fields, partition, postcodes, prefixed_ids, valid_nhs_numbers
from linkage.synthetic.vocab import POOLS, POSTCODE_AREAS, SUBGROUPS

HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5])
HOUSEHOLD_SIZE_SHARES = np.array([0.29, 0.34, 0.16, 0.14, 0.07])
TWIN_HOUSEHOLD_SHARE = 0.04  # of households whose 3rd and 4th members are both children
DOUBLE_SURNAME_SHARE = 0.04  # of British-named households
TOOK_PARTNERS_SURNAME = 0.75  # of women in an opposite-sex couple
MIDDLE_NAME_SHARE = 0.45
SECOND_MIDDLE_NAME_SHARE = 0.15  # of those with a middle name
MOVED_SHARE = 0.12  # households with an earlier address some records still hold
PEOPLE_PER_POSTCODE = 12
PEOPLE_PER_PRACTICE = 7000


@dataclass(frozen=True)
class Population:
    """One array per attribute, one element per resident (index = person number)."""

    reference_date: date
    household: np.ndarray
    household_start: np.ndarray  # index of the household's first member, per person
    household_size: np.ndarray
    member: np.ndarray  # position within the household (0 = first adult)
    sex: np.ndarray  # "M" / "F"
    dob: np.ndarray  # datetime64[D]
    age: np.ndarray  # whole years at the reference date
    subgroup: np.ndarray  # index into SUBGROUPS
    forename: np.ndarray
    middle_names: np.ndarray  # "" when none
    surname: np.ndarray
    maiden_surname: np.ndarray  # "" unless she took her partner's surname
    postcode: np.ndarray
    old_postcode: np.ndarray  # "" unless the household moved
    imd_decile: np.ndarray
    practice_code: np.ndarray
    nhs_number: np.ndarray
    is_twin: np.ndarray

    def __post_init__(self) -> None:
        # Every string array at its narrowest (linkage.synthetic.strings.compact): a third of the memory.
        compact_fields(self)

    @property
    def size(self) -> int:
        return len(self.household)

    @property
    def ethnic_code(self) -> np.ndarray:
        return np.array([s.code for s in SUBGROUPS])[self.subgroup]

    @property
    def ethnic_group(self) -> np.ndarray:
        return np.array([s.group for s in SUBGROUPS])[self.subgroup]

    @property
    def person_ids(self) -> np.ndarray:
        return prefixed_ids("P", np.arange(self.size) + 1, 8)


def age_at(dob: np.ndarray, on: date) -> np.ndarray:
    """Whole years completed on `on` (the cohort builder's definition of age at the index date)."""
    years = dob.astype("M8[Y]").astype(int) + 1970
    # compare (month, day) rather than day of year, so leap years do not move birthdays
    months = dob.astype("M8[M]").astype(int) % 12 + 1
    days = (dob - dob.astype("M8[M]")).astype(int) + 1
    not_yet = (months > on.month) | ((months == on.month) & (days > on.day))
    return on.year - years - not_yet.astype(int)


def make_population(people: int, reference_date: date, rng: np.random.Generator) -> Population:
    """Draw `people` residents in households; deterministic for a given generator state."""
    sizes = rng.choice(HOUSEHOLD_SIZES, size=people, p=HOUSEHOLD_SIZE_SHARES)
    ends = np.cumsum(sizes)
    households = int(np.searchsorted(ends, people)) + 1
    sizes = sizes[:households].copy()
    sizes[-1] -= ends[households - 1] - people
    starts = np.cumsum(sizes) - sizes
    household = np.repeat(np.arange(households), sizes)
    member = np.arange(people) - starts[household]
    size = sizes[household]

    # Ages: first adult by household size; a partner close in age; the rest are children (up to 24).
    partnered_hh = np.where(sizes == 1, False, rng.random(households) < np.where(sizes == 2, 0.8, 0.75))
    first_age_hh = np.select(
        [sizes == 1, (sizes == 2) & partnered_hh, sizes == 2],
        [
            np.where(
                rng.random(households) < 0.5,
                rng.integers(60, 96, households),
                rng.integers(18, 96, households),
            ),
            rng.integers(22, 91, households),
            rng.integers(22, 61, households),
        ],
        rng.integers(25, 56, households),
    )
    first_age = first_age_hh[household]
    partnered = partnered_hh[household]
    is_partner = (member == 1) & partnered
    is_child = (member > 0) & ~is_partner
    partner_age = np.clip(first_age + np.round(rng.normal(0, 4, people)).astype(int), 18, 100)
    child_age = (rng.random(people) * (np.minimum(24, first_age - 18) + 1)).astype(int)
    age_years = np.select([member == 0, is_partner], [first_age, partner_age], child_age)
    ref = np.datetime64(reference_date, "D")
    dob = ref - (age_years * 365.2425 + rng.random(people) * 365).astype(np.int64)
    dob = dob.astype("M8[D]")

    # Twins: the 3rd and 4th members, both children, share a date of birth.
    twin_hh = (sizes >= 4) & (rng.random(households) < TWIN_HOUSEHOLD_SHARE)
    second_twin = (member == 3) & twin_hh[household] & is_child & np.roll(is_child, 1)
    first_twin = np.roll(second_twin, -1)
    dob[second_twin] = dob[first_twin]
    is_twin = first_twin | second_twin

    sex_draw = np.where(rng.random(people) < 0.5, "M", "F")
    first_sex = np.repeat(sex_draw[starts], sizes)
    opposite = np.where(first_sex == "M", "F", "M")
    sex = np.where(is_partner & (rng.random(people) < 0.95), opposite, sex_draw)
    sex[member == 0] = first_sex[member == 0]

    subgroup_hh = rng.choice(len(SUBGROUPS), size=households, p=_shares())
    subgroup = subgroup_hh[household]

    forename, middle_names = _forenames(subgroup, sex, rng)
    _separate_household_forenames(forename, household, subgroup, sex, rng)
    surname_hh = _household_surnames(subgroup_hh, rng)
    surname = surname_hh[household]
    couple = partnered & (first_sex != np.roll(sex, -1)[starts][household])
    took_name = (member <= 1) & couple & (sex == "F") & (rng.random(people) < TOOK_PARTNERS_SURNAME)
    maiden = np.where(took_name, _household_surnames(subgroup, rng), "")

    universe = postcodes(rng, max(40, people // PEOPLE_PER_POSTCODE), POSTCODE_AREAS)
    postcode_hh = universe[rng.integers(0, len(universe), households)]
    moved_hh = rng.random(households) < MOVED_SHARE
    old_hh = np.where(moved_hh, universe[rng.integers(0, len(universe), households)], "")
    old_hh = np.where(old_hh == postcode_hh, "", old_hh)
    sectors, sector_idx = np.unique(np.strings.slice(postcode_hh, 0, -2), return_inverse=True)
    imd_hh = rng.integers(1, 11, len(sectors))[sector_idx]
    districts, district_idx = np.unique(partition(postcode_hh, " ")[0], return_inverse=True)
    practices = _practice_codes(max(3, people // PEOPLE_PER_PRACTICE), rng)
    practice_hh = practices[(district_idx * 7 + rng.integers(0, 2, households)) % len(practices)]

    return Population(
        reference_date=reference_date,
        household=household,
        household_start=starts[household],
        household_size=size,
        member=member,
        sex=sex,
        dob=dob,
        age=age_at(dob, reference_date),
        subgroup=subgroup,
        forename=forename,
        middle_names=middle_names,
        surname=surname,
        maiden_surname=maiden,
        postcode=postcode_hh[household],
        old_postcode=old_hh[household],
        imd_decile=imd_hh[household],
        practice_code=practice_hh[household],
        nhs_number=valid_nhs_numbers(rng, people),
        is_twin=is_twin,
    )


def _shares() -> np.ndarray:
    shares = np.array([s.share for s in SUBGROUPS])
    return shares / shares.sum()


def _zipf_pick(names: tuple[str, ...], count: int, rng: np.random.Generator) -> np.ndarray:
    weights = 1.0 / np.arange(1, len(names) + 1) ** 0.6
    return np.array(names)[rng.choice(len(names), size=count, p=weights / weights.sum())]


def _pool_of(subgroup: np.ndarray) -> np.ndarray:
    return np.array([s.pool for s in SUBGROUPS])[subgroup]


def _forenames(
    subgroup: np.ndarray, sex: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    pool = _pool_of(subgroup)
    forename = np.full(len(subgroup), "", dtype="U16")
    middle = np.full(len(subgroup), "", dtype="U34")
    second = np.full(len(subgroup), "", dtype="U16")
    has_middle = rng.random(len(subgroup)) < MIDDLE_NAME_SHARE
    for name, names in POOLS.items():  # a loop over name pools, not over people
        for sex_code, choices in (("M", names.male), ("F", names.female)):
            rows = np.flatnonzero((pool == name) & (sex == sex_code))
            forename[rows] = _zipf_pick(choices, len(rows), rng)
            middle[rows] = _zipf_pick(choices, len(rows), rng)
            second[rows] = _zipf_pick(choices, len(rows), rng)
    middle = np.where(has_middle & (middle != forename), middle, "")
    # Some have two middle names (space-separated in the GP file).
    two = (
        (middle != "")
        & (second != middle)
        & (second != forename)
        & (rng.random(len(middle)) < SECOND_MIDDLE_NAME_SHARE)
    )
    middle = np.where(two, np.strings.add(np.strings.add(middle, " "), second), middle)
    return forename, middle


def _separate_household_forenames(
    forename: np.ndarray,
    household: np.ndarray,
    subgroup: np.ndarray,
    sex: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Members of one household (twins above all) never share a forename: a clash is drawn again."""
    pool = _pool_of(subgroup)
    for _ in range(10):
        clash = np.zeros(len(forename), dtype=bool)
        for back in range(1, len(HOUSEHOLD_SIZES)):
            clash[back:] |= (forename[back:] == forename[:-back]) & (household[back:] == household[:-back])
        if not clash.any():
            return
        for name, names in POOLS.items():  # uniform redraw, so rare names break the tie
            for sex_code, choices in (("M", names.male), ("F", names.female)):
                rows = np.flatnonzero(clash & (pool == name) & (sex == sex_code))
                forename[rows] = np.array(choices)[rng.integers(0, len(choices), len(rows))]


def _household_surnames(subgroup: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pool = _pool_of(subgroup)
    surname = np.full(len(subgroup), "", dtype="U32")
    for name, names in POOLS.items():
        rows = np.flatnonzero(pool == name)
        surname[rows] = _zipf_pick(names.surnames, len(rows), rng)
    # Double-barrelled surnames, hyphenated or not (Smith-Jones, Lloyd Webber).
    double = (pool == "british") & (rng.random(len(subgroup)) < DOUBLE_SURNAME_SHARE)
    second = _zipf_pick(POOLS["british"].surnames, len(subgroup), rng)
    joiner = np.where(rng.random(len(subgroup)) < 0.7, "-", " ")
    joined = np.strings.add(np.strings.add(surname, joiner), second)
    return np.where(double & (second != surname), joined, surname)


def _practice_codes(count: int, rng: np.random.Generator) -> np.ndarray:
    """ODS-style practice codes such as B86001: a letter, five digits, all distinct."""
    letters = np.array(list("ABCDEFGHJKLMNPY"))[rng.integers(0, 15, count)]
    numbers = rng.choice(100_000, size=count, replace=False).astype(str)
    return np.unique(np.strings.add(letters, np.strings.zfill(numbers, 5)))
