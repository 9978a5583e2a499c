"""Named generator profiles (`synthetic.profile`): worlds the linkage model was not tuned on.

- `default`: the project's own world (byte-identical to the generator without profiles).
- `families`: heavy-tailed names (most people carry no top-30 name: blends of two names of their pool),
  parents and children and siblings sharing a forename, more twins with similar forenames, and wrong NHS numbers
  that still pass modulus 11 (two wrong digits: one changed digit plus its recomputed check digit, or a relative's).
- `messy`: every error rate 2.5x, fewer NHS numbers, dates of birth missing in every source, and stronger
  differences between ethnic groups (1.5-1.7x the White group's error rates).

Each profile draws from its own random stream, so `default` draws exactly what it always drew.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from linkage.config import SyntheticConfig
from linkage.synthetic.population import Population
from linkage.synthetic.records import SourceRecords
from linkage.synthetic.strings import _as_codes, _from_codes, nhs_check_digit, typo
from linkage.synthetic.vocab import GROUPS, POOLS, SUBGROUPS

PROFILES = ("default", "families", "messy")
PROFILE_STREAM = 1_000  # rng stream id for profile draws, past the generator's own stages

# families
RARE_SURNAME_SHARE = 0.65  # of households
RARE_FORENAME_SHARE = 0.6  # of people
PARENT_FORENAME_SHARE = 0.15  # of children of the first adult's sex
SIBLING_FORENAME_SHARE = 0.06  # of children after the first, same sex as the one before
TWIN_SHARE = 0.12  # of households of 4+ whose 3rd and 4th members are children
VALID_WRONG_NHS = 0.008  # per record: a different number that passes modulus 11
FAMILIES_NHS_FAMILY_MEMBER = 0.008

# messy
MESSY_ERROR_SCALE = 2.5
MESSY_NHS_PRESENT = {"gp": 0.93, "hospital": 0.85, "social_care": 0.45, "third_sector": 0.0}
MESSY_GROUP_FACTOR = {"White": 1.0, "Mixed": 1.3, "Asian": 1.6, "Black": 1.7, "Other": 1.5}
MESSY_DOB_MISSING = {"gp": 0.02, "hospital": 0.04, "social_care": 0.06, "third_sector": 0.0}
MESSY_THIRD_SECTOR_DOB_PRESENT = 0.5


def profile_rng(config: SyntheticConfig) -> np.random.Generator:
    return np.random.default_rng([config.seed, PROFILE_STREAM])


def profile_config(config: SyntheticConfig) -> SyntheticConfig:
    """The synthetic settings a profile changes (rates only; structure is changed by the functions below)."""
    if config.profile == "families":
        return config.model_copy(
            update={
                "error_rates": {
                    **config.error_rates,
                    "nhs_family_member": max(
                        config.error_rates["nhs_family_member"], FAMILIES_NHS_FAMILY_MEMBER
                    ),
                }
            }
        )
    if config.profile == "messy":
        return config.model_copy(
            update={
                "error_rate_scale": config.error_rate_scale * MESSY_ERROR_SCALE,
                "nhs_number_present": dict(MESSY_NHS_PRESENT),
                "group_error_factor": dict(MESSY_GROUP_FACTOR),
                "third_sector_dob_present": MESSY_THIRD_SECTOR_DOB_PRESENT,
            }
        )
    return config


def reshape_population(pop: Population, profile: str, rng: np.random.Generator) -> Population:
    """The families profile's people: rare names, shared forenames, more twins. Other profiles: unchanged."""
    if profile != "families":
        return pop
    forename, surname = pop.forename.astype("U40"), pop.surname.astype("U40")
    pool = np.array([s.pool for s in SUBGROUPS])[pop.subgroup]
    first = pop.household_start
    # Rare surnames: the household's surname blended with another of its pool, for everyone holding it.
    rare_hh = rng.random(pop.size) < RARE_SURNAME_SHARE
    blended = _blend(surname[first], pool[first], None, rng, surnames=True)
    takes = rare_hh[first] & (surname == surname[first])
    surname = np.where(takes, blended, surname)
    # Rare forenames: blends of two forenames of the person's pool and sex.
    rare = rng.random(pop.size) < RARE_FORENAME_SHARE
    forename = np.where(rare, _blend(forename, pool, pop.sex, rng, surnames=False), forename)
    # Twins: more of them, with similar forenames (one keying difference apart).
    is_child = (pop.member >= 2) | ((pop.member == 1) & (np.abs(pop.age - pop.age[first]) > 14))
    second = (
        (pop.member == 3)
        & (pop.household_size >= 4)
        & is_child
        & np.roll(is_child, 1)
        & (rng.random(pop.size) < TWIN_SHARE)
    )
    first_twin = np.roll(second, -1)
    dob = pop.dob.copy()
    dob[second] = dob[first_twin]
    sex = pop.sex.copy()
    sex[second] = sex[first_twin]
    forename[second] = typo(forename[first_twin], rng)
    # A parent's forename given to a child of the same sex; a sibling's to the next child.
    same_sex_parent = is_child & (sex == sex[first]) & ~second
    forename = np.where(
        same_sex_parent & (rng.random(pop.size) < PARENT_FORENAME_SHARE), forename[first], forename
    )
    previous = np.maximum(np.arange(pop.size) - 1, 0)
    sibling = is_child & np.roll(is_child, 1) & (sex == sex[previous]) & ~second & (pop.member >= 3)
    forename = np.where(
        sibling & (rng.random(pop.size) < SIBLING_FORENAME_SHARE), forename[previous], forename
    )
    age = pop.age.copy()
    age[second] = age[first_twin]
    return dataclasses.replace(
        pop,
        forename=forename,
        surname=surname,
        dob=dob,
        sex=sex,
        age=age,
        is_twin=pop.is_twin | second | first_twin,
    )


def misrecord(
    recs: SourceRecords,
    pop: Population,
    profile: str,
    rng: np.random.Generator,
    group_factor: dict[str, float],
) -> SourceRecords:
    """Profile errors on a source's records: valid wrong NHS numbers (families), missing dates of birth (messy)."""
    n = recs.size
    if profile == "families" and n:
        wrong = (recs.nhs_number != "") & (rng.random(n) < VALID_WRONG_NHS)
        nhs = recs.nhs_number.copy()
        nhs[wrong] = two_wrong_digits(nhs[wrong], rng)
        return dataclasses.replace(recs, nhs_number=nhs)
    if profile == "messy" and n:
        factor = np.array([group_factor[g] for g in GROUPS])[
            np.array([GROUPS.index(s.group) for s in SUBGROUPS])[pop.subgroup[recs.person]]
        ]
        missing = rng.random(n) < np.clip(MESSY_DOB_MISSING[recs.source] * factor, 0, 1)
        return dataclasses.replace(recs, dob=np.where(missing, np.datetime64("NaT"), recs.dob))
    return recs


def two_wrong_digits(numbers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A different valid NHS number: one of the first nine digits changed and the check digit recomputed (two
    digits differ, which modulus 11 cannot catch). Where the new check digit would be 10, the number is kept."""
    if not len(numbers):
        return numbers
    codes = _as_codes(numbers, 10)
    rows = np.arange(len(numbers))
    pos = rng.integers(0, 9, len(numbers))
    codes[rows, pos] = (codes[rows, pos] - ord("0") + rng.integers(1, 10, len(numbers))) % 10 + ord("0")
    first_nine = np.array([int(x) for x in _from_codes(codes[:, :9])], dtype=np.int64)
    check = nhs_check_digit(first_nine)
    changed = np.char.add(_from_codes(codes[:, :9]), check.astype(str))
    return np.where(check == 10, numbers, changed)


def _blend(
    names: np.ndarray, pool: np.ndarray, sex: np.ndarray | None, rng: np.random.Generator, surnames: bool
) -> np.ndarray:
    """Each name's first part joined to the end of another name of the same pool (and sex): a rare name."""
    other = names.copy()
    for name, names_of in POOLS.items():  # a loop over pools, not over people
        groups = [("", names_of.surnames)] if surnames else [("M", names_of.male), ("F", names_of.female)]
        for sex_code, choices in groups:
            rows = np.flatnonzero((pool == name) & ((sex == sex_code) if sex is not None else True))
            other[rows] = np.array(choices)[rng.integers(0, len(choices), len(rows))]
    head = np.maximum(2, np.strings.str_len(names) // 2 + rng.integers(0, 2, len(names)))
    tail = np.maximum(2, np.strings.str_len(other) // 2)
    first = np.array([n[:k] for n, k in zip(names, head, strict=True)])
    last = np.array([o[-k:] for o, k in zip(other, tail, strict=True)])
    return np.strings.add(first, last)
