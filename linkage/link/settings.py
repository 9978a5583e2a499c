"""The Splink model declared as data: comparisons, blocking rules and the rules the prior is estimated from.

Blocking rules for prediction (pairs measured with `splink.blocking_analysis` on the synthetic
extract; see `BLOCKING_RATIONALE` for the counts and why each rule is there). Every rule is an
equality join so Spark can hash-partition it (a null test reads one record, so it filters that side before the
join); fuzzy agreement is left to the comparisons.
"""

from __future__ import annotations

import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import SettingsCreator, block_on
from splink.blocking_rule_library import CustomRule

from linkage.config import LinkageConfig

UNIQUE_ID = "source_record_id"
SOURCE_DATASET = "source_dataset"

# Only what the model reads leaves people_std for Splink: fewer columns, smaller shuffles.
MODEL_COLUMNS = (
    SOURCE_DATASET,
    UNIQUE_ID,
    "forename_std",
    "surname_std",
    "surname_parts",
    "forename_canonical",
    "surname_canonical",
    "forename_phonetic",
    "surname_phonetic",
    "date_of_birth",
    "dob_is_placeholder",
    "year_of_birth",
    "sex",
    "postcode_std",
    "postcode_sector",
    "postcode_district",
    "nhs_number",
)
# The record's source again, under a name of its own, for the source comparison: Splink selects the source column
# once as part of each record's id, and a comparison reading it too would select it twice (an ambiguous reference
# in Spark). linkage.link.model.model_input adds it.
RECORD_SOURCE = "record_source"


# A level whose weight is fixed at zero (m = u): the pair is set apart from the other levels but the comparison
# adds no evidence, because another comparison already counts it.
NEUTRAL = {"m_probability": 1e-4, "u_probability": 1e-4, "fix_m_probability": True, "fix_u_probability": True}


def forename_disagrees_sql() -> str:
    """Forenames unequal, not alike in sound or spelling (Jaro-Winkler under 0.8), and not swapped with the surname.

    The canonical (nickname) form is left out on purpose: EM cannot estimate a comparison in a session that
    blocks on a column it reads, and the first EM session blocks on forename_canonical.
    """
    return (
        "forename_std_l <> forename_std_r "
        "AND forename_phonetic_l <> forename_phonetic_r AND jaro_winkler(forename_std_l, forename_std_r) < 0.8 "
        "AND forename_std_l <> surname_std_r"
    )


def dob_disagrees_sql() -> str:
    """Both dates known and not close at any level of the date-of-birth comparison (year, day+month or a month)."""
    return (
        "date_of_birth_l IS NOT NULL AND date_of_birth_r IS NOT NULL "
        "AND year(date_of_birth_l) <> year(date_of_birth_r) "
        "AND NOT (month(date_of_birth_l) = month(date_of_birth_r) AND day(date_of_birth_l) = day(date_of_birth_r)) "
        "AND abs(datediff(date_of_birth_l, date_of_birth_r)) > 31"
    )


def _name_comparison(column: str, other: str) -> cl.CustomComparison:
    """Exact, swapped with the other name, canonical (nickname/transliteration), fuzzy, phonetic."""
    std, canonical, phonetic = f"{column}_std", f"{column}_canonical", f"{column}_phonetic"

    def weighed_in_forename(swap_level, how: str = ""):
        """A swap level, weighed in the forename comparison and neutral in the surname one. Both name comparisons see
        a swap; counting it twice made two swapped common names alone (no date of birth, no postcode) outweigh the
        prior: 159 of 351 false links at 100k people. The forename comparison counts it."""
        if column == "forename":
            return swap_level.configure(label_for_charts=f"forename and surname swapped{how}")
        return swap_level.configure(
            label_for_charts=f"surname and forename swapped{how} (weighed in forename)", **NEUTRAL
        )

    swapped = weighed_in_forename(cll.ColumnsReversedLevel(std, f"{other}_std", symmetrical=True))
    levels = [
        cll.NullLevel(std),
        cll.ExactMatchLevel(std, term_frequency_adjustments=True),
        swapped,
        cll.ExactMatchLevel(canonical).configure(
            tf_adjustment_column=canonical, label_for_charts=f"{canonical} equal"
        ),
        cll.JaroWinklerLevel(std, 0.92),
    ]
    if column == "surname":
        # A double-barrelled or changed-on-marriage surname shares one part with the other form.
        levels.append(
            cll.ArrayIntersectLevel("surname_parts", 1).configure(label_for_charts="surname part shared")
        )
    # Swapped with a typo in one or both: the exact swap above misses them, and each name comparison then saw two
    # different names. On FEBRL3 (no one here wrote it) 137 true candidate pairs had one name equal to the other
    # record's other name and the second within Jaro-Winkler 0.92 of its swapped partner; the link missed 74 of them,
    # and no non-matching candidate pair looked like that.
    fuzzy_swap = cll.CustomLevel(
        f"jaro_winkler({std}_l, {other}_std_r) >= 0.92 AND jaro_winkler({other}_std_l, {std}_r) >= 0.92"
    )
    levels.append(weighed_in_forename(fuzzy_swap, ", one misspelt"))
    levels += [
        cll.ExactMatchLevel(phonetic).configure(label_for_charts=f"{phonetic} equal"),
        cll.JaroWinklerLevel(std, 0.8),
        cll.ElseLevel(),
    ]
    return cl.CustomComparison(
        levels, output_column_name=column, comparison_description=f"{column} similarity"
    )


def _date_of_birth_comparison() -> cl.CustomComparison:
    """Exact (1 January, a common placeholder, separately), day/month swapped, one year digit wrong, within a month."""
    return cl.CustomComparison(
        [
            cll.CustomLevel("year_of_birth_l IS NULL OR year_of_birth_r IS NULL").configure(
                is_null_level=True
            ),
            # u is fixed: random sampling never sees two records sharing a 1 January date (u sampling found 0 in
            # 5M pairs), and Splink's default u for an unseen first level (0.23) gave this level -6.7 bits, so an
            # exact date of birth counted against a match for everyone born on 1 January. 1 January births and
            # placeholders are about 0.7% of records, spread over some 80 birth years: u = 0.007^2 / 80 ~ 6e-7.
            cll.CustomLevel(
                "date_of_birth_l = date_of_birth_r AND dob_is_placeholder_l",
                label_for_charts="exact, 1 January",
            ).configure(u_probability=6e-7, fix_u_probability=True),
            cll.CustomLevel("date_of_birth_l = date_of_birth_r", label_for_charts="exact"),
            cll.CustomLevel(
                "year(date_of_birth_l) = year(date_of_birth_r) "
                "AND day(date_of_birth_l) = month(date_of_birth_r) "
                "AND month(date_of_birth_l) = day(date_of_birth_r)",
                label_for_charts="day and month swapped",
            ),
            cll.CustomLevel(
                "month(date_of_birth_l) = month(date_of_birth_r) "
                "AND day(date_of_birth_l) = day(date_of_birth_r) "
                "AND levenshtein(cast(year(date_of_birth_l) AS string), "
                "cast(year(date_of_birth_r) AS string)) = 1",
                label_for_charts="one digit of the year wrong",
            ),
            cll.CustomLevel(
                "abs(datediff(date_of_birth_l, date_of_birth_r)) <= 31", label_for_charts="within a month"
            ),
            # 1 January stands in for an unknown day and month: same year, one side 1 January.
            cll.CustomLevel(
                "year(date_of_birth_l) = year(date_of_birth_r) AND (dob_is_placeholder_l OR dob_is_placeholder_r)",
                label_for_charts="same year, one 1 January",
            ),
            # Third-sector clients often give only a year of birth.
            cll.CustomLevel(
                "(date_of_birth_l IS NULL OR date_of_birth_r IS NULL) AND year_of_birth_l = year_of_birth_r",
                label_for_charts="year only, equal",
            ),
            cll.ElseLevel(),
        ],
        output_column_name="date_of_birth",
        comparison_description="date of birth",
    )


def _postcode_comparison() -> cl.CustomComparison:
    return cl.CustomComparison(
        [
            cll.NullLevel("postcode_std"),
            cll.ExactMatchLevel("postcode_std", term_frequency_adjustments=True),
            cll.ExactMatchLevel("postcode_sector").configure(label_for_charts="same sector"),
            cll.ExactMatchLevel("postcode_district").configure(label_for_charts="same district"),
            cll.ElseLevel(),
        ],
        output_column_name="postcode",
        comparison_description="postcode: full, sector, district",
    )


def _source_comparison() -> cl.CustomComparison:
    """One source or two. Most people appear once in each source that knows them, so a true pair lies across
    sources far more often than two random records do: the same-source level is the rarer duplicate within one
    source, where relatives registered together (one GP practice, one address) are the commonest candidate pairs.
    EM estimates m (the share of true pairs inside one source) and random sampling u, as for any comparison, so
    the weight is the extract's own. Without it the model gave within-source pairs the prior of cross-source ones:
    83 of the 143 false direct links on the quality bench's `families` profile at 100,000 people, and 32 of 77 on
    `messy`, were two records of one GP, where 4% of the true pairs lie within one source."""
    return cl.CustomComparison(
        [
            # Never null (every record has a source); declared so that Splink does not warn of a missing null level.
            cll.NullLevel(RECORD_SOURCE),
            cll.CustomLevel(f"{RECORD_SOURCE}_l = {RECORD_SOURCE}_r").configure(
                label_for_charts="same source (a duplicate within one source)"
            ),
            cll.ElseLevel().configure(label_for_charts="different sources"),
        ],
        output_column_name="source",
        comparison_description="records from one source or from two",
    )


# Weight of the family correction (bits). Twins, siblings and partners share surname and address (twins a date of
# birth, partners often a year of birth), so those agreements together outweigh one disagreeing forename (and NHS
# number): the model's assumption that the comparisons are independent given match status fails for exactly these
# pairs, which were most of the false links at 100k people. Between true matches, a forename agreeing at no level
# (no exact, phonetic, Jaro-Winkler >= 0.8 or swapped agreement) is already rare (about 1 in 100); -13 bits (1 in
# 8,192 beyond the ordinary weights) keeps household members apart and costs few true matches.
FAMILY_CORRECTION_BITS = -13.0


def _nhs_number_comparison() -> cl.CustomComparison:
    """Same number (unless it looks like a relative's), different numbers.

    A shared number whose forename and date of birth both disagree is a relative's number copied onto a record:
    the agreement on the number then says nothing, so that level's weight is fixed at 0.
    """
    return cl.CustomComparison(
        [
            cll.NullLevel("nhs_number"),
            cll.CustomLevel(
                f"nhs_number_l = nhs_number_r AND {forename_disagrees_sql()} AND {dob_disagrees_sql()}"
            ).configure(
                label_for_charts="same number, forename and date of birth disagree (a relative's number)",
                **NEUTRAL,
            ),
            cll.ExactMatchLevel("nhs_number"),
            cll.ElseLevel(),
        ],
        output_column_name="nhs_number",
        comparison_description="NHS number",
    )


def _family_correction() -> cl.CustomComparison:
    """A fixed correction, not estimated, for relatives: forenames that disagree, with different valid NHS numbers or
    the same surname and postcode (siblings, twins, partners born the same year)."""
    return cl.CustomComparison(
        [
            # Without both forenames the correction cannot tell: no correction (a null level's weight is 0).
            cll.NullLevel("forename_std"),
            cll.CustomLevel(
                f"{forename_disagrees_sql()} AND (nhs_number_l <> nhs_number_r "
                "OR (surname_std_l = surname_std_r AND postcode_std_l = postcode_std_r))"
            ).configure(
                label_for_charts="forenames disagree and NHS numbers differ or surname and postcode agree (family)",
                m_probability=2**FAMILY_CORRECTION_BITS,
                u_probability=1.0,
                fix_m_probability=True,
                fix_u_probability=True,
            ),
            cll.ElseLevel().configure(
                label_for_charts="no correction",
                m_probability=1.0,
                u_probability=1.0,
                fix_m_probability=True,
                fix_u_probability=True,
            ),
        ],
        output_column_name="family",
        comparison_description="correction for families: forenames disagree within a household or across NHS numbers",
    )


# Weight of the relatives correction (bits). The joint and household weights were set from the weights of the false
# pairs measured in issue 17 (about +14 bits over the prior); `python -m linkage.quality_bench` replays what each
# level removes and costs: on `families` at 20k people the joint level removed 108 false links and the household
# level 29, and neither cost a true link there or on `default` and `messy` (README, quality bench).
# Two present, valid, different NHS numbers and dates of birth that disagree at every level are two people: in the
# GP source and between hospital and GP these are parents and children or siblings who share forename, surname and
# postcode, whose names (with rare-name term frequencies) and postcode added ~+35 bits against ~-10 for the two
# disagreements. The model treats NHS number and date of birth as independent; between true matches both are
# rarely wrong together (a relative's number on a record whose date is also wrong), so the joint level is fixed.
RELATIVES_CORRECTION_BITS = -20.0
# Two people's own NHS numbers (present, valid, different in more than two digits: a wrong-but-valid copy of one
# number differs in two, one digit and its check digit) with forenames that are not equal and dates of birth that do
# not disagree: twins. Twins share surname, date of birth, sex and address, and their forenames may be one keystroke
# apart, so every comparison but the NHS number agrees or nearly agrees; the different numbers (about -5 bits as
# estimated: EM's m for "different" absorbs the wrong-but-valid numbers of true matches) were outweighed by ~+26.
# Between true matches two numbers this far apart are a relative's number on one record, and then the forenames
# are nearly always equal. Chosen on `families` at 20k people (pair replay): -25 takes all 332 fired false links
# below the best-link threshold and costs 6 true links (cross-source, one forename keystroke apart), the same 6 as
# any weight from -16 down; -20 left 9 false above best_link.
TWINS_CORRECTION_BITS = -25.0
# Household without NHS numbers to decide: postcode and a surname or a forename agree, the dates of birth disagree at
# every level and the NHS numbers do not agree. A parent and child, or two siblings, at one address look like this,
# also when the child carries the other parent's surname and the parent's forename. Chosen on `families` at 20k
# people (pair replay on the scored pairs): at -10 with the surname alone, 37 false pairs at or above best_link fired
# it or its forename form (4 with the surname, 33 with the forename only); -15 took all of them below best_link, -10
# left 4. True pairs it fires on: 0 on families and default, 4 on messy (one of them above best_link without it).
HOUSEHOLD_CORRECTION_BITS = -15.0
# One NHS number on two records whose dates of birth are a generation apart (15 years or more, and neither the day
# and month nor any other level of the date comparison agrees): a parent's number on a child's record or the reverse,
# as when a baby is registered under the mother's number. The NHS comparison weighs an equal number as near-certain
# (+15 bits or so) and a disagreeing date of birth takes off about 5, so with names and address shared in a
# household such pairs linked: on `families` at 100k people 14 false direct links shared a number with dates of
# birth 19-52 years apart, against 2 true ones (a whole date of birth wrong). The gap keeps a date mistyped by a few
# years, or with one digit of the year wrong, out of it. Chosen on `families` (pair replay): see the README.
SHARED_NUMBER_CORRECTION_BITS = -30.0
GENERATION_YEARS = 15


def _fixed(bits: float) -> dict:
    return {
        "m_probability": 2**bits,
        "u_probability": 1.0,
        "fix_m_probability": True,
        "fix_u_probability": True,
    }


NO_CORRECTION = {
    "m_probability": 1.0,
    "u_probability": 1.0,
    "fix_m_probability": True,
    "fix_u_probability": True,
}


def _relatives_correction() -> cl.CustomComparison:
    """A fixed correction for relatives' records: different valid NHS numbers with a different date of birth; one
    NHS number with dates of birth a generation apart (a parent's or child's number); two NHS numbers more than two
    digits apart with forenames not equal (twins); or a shared household (postcode, and a surname or a forename) with
    a different date of birth and no NHS number agreement. Levels are tried in that order."""
    dob_disagrees = dob_disagrees_sql()
    return cl.CustomComparison(
        [
            cll.CustomLevel("date_of_birth_l IS NULL OR date_of_birth_r IS NULL").configure(
                is_null_level=True
            ),
            cll.CustomLevel(f"nhs_number_l <> nhs_number_r AND {dob_disagrees}").configure(
                label_for_charts="two different valid NHS numbers and dates of birth disagree (relatives)",
                **_fixed(RELATIVES_CORRECTION_BITS),
            ),
            cll.CustomLevel(
                f"nhs_number_l = nhs_number_r AND {dob_disagrees} "
                f"AND abs(year(date_of_birth_l) - year(date_of_birth_r)) >= {GENERATION_YEARS}"
            ).configure(
                label_for_charts="one NHS number, dates of birth a generation apart (a parent's or child's number)",
                **_fixed(SHARED_NUMBER_CORRECTION_BITS),
            ),
            cll.CustomLevel(
                "nhs_number_l <> nhs_number_r AND levenshtein(nhs_number_l, nhs_number_r) > 2 "
                "AND forename_std_l <> forename_std_r"
            ).configure(
                label_for_charts="two NHS numbers more than two digits apart, forenames not equal (twins)",
                **_fixed(TWINS_CORRECTION_BITS),
            ),
            cll.CustomLevel(
                "postcode_std_l = postcode_std_r "
                "AND (surname_std_l = surname_std_r OR forename_std_l = forename_std_r) "
                f"AND {dob_disagrees} AND NOT coalesce(nhs_number_l = nhs_number_r, false)"
            ).configure(
                label_for_charts="same postcode and surname or forename, dates of birth disagree, NHS numbers not equal "
                "(household)",
                **_fixed(HOUSEHOLD_CORRECTION_BITS),
            ),
            cll.ElseLevel().configure(label_for_charts="no correction", **NO_CORRECTION),
        ],
        output_column_name="relatives",
        comparison_description="correction for relatives: different NHS numbers, a shared one or one household, dates of birth apart",
    )


COMPARISONS = (
    _name_comparison("forename", "surname"),
    _name_comparison("surname", "forename"),
    _date_of_birth_comparison(),
    cl.ExactMatch("sex"),
    _postcode_comparison(),
    _nhs_number_comparison(),
    _source_comparison(),
)

# Fixed corrections, added to the model after training. EM must not see them: a -13 bit penalty on "forenames
# disagree" within families made EM explain those pairs as non-matches and drive m(forename disagrees) to 3.5e-8
# (-24.7 bits), which then sank true matches with a mistyped forename.
CORRECTIONS = (_family_correction(), _relatives_correction())


def with_corrections(model: dict, dialect: str = "spark", corrections=CORRECTIONS) -> dict:
    """The trained model (Splink JSON as a dict) with the fixed corrections appended as comparisons."""
    present = {c["output_column_name"] for c in model["comparisons"]}
    added = [c.get_comparison(dialect).as_dict() for c in corrections]
    return {
        **model,
        "comparisons": model["comparisons"] + [c for c in added if c["output_column_name"] not in present],
    }


_CANONICAL_NAMES_AND_YEAR = (
    "l.forename_canonical = r.forename_canonical AND l.surname_canonical = r.surname_canonical "
    "AND l.year_of_birth = r.year_of_birth"
)
_NAMES_SWAPPED = "l.forename_std = r.surname_std AND l.surname_std = r.forename_std"

# Candidate pairs: each rule catches matches the others miss when one identifier is wrong or missing.
BLOCKING_RULES_FOR_PREDICTION = (
    block_on("nhs_number"),
    block_on("surname_phonetic", "date_of_birth"),
    block_on("forename_phonetic", "date_of_birth"),
    # Day or month of birth wrong, or a nickname, where either record lacks a valid NHS number. Where both hold one,
    # the NHS rule has paired them if the numbers agree; if they differ, a different NHS number beside a different
    # date of birth is near-certain non-match evidence, so those pairs were scored only to be rejected. They were
    # 83% of this rule's pairs at 100k people (default profile) and grow with the square of a common name's count
    # (the rule gave 4.0M of 12.9M candidate pairs at 1M). Split in two so each side's null test filters its
    # records before the join.
    CustomRule(f"{_CANONICAL_NAMES_AND_YEAR} AND l.nhs_number IS NULL"),
    CustomRule(f"{_CANONICAL_NAMES_AND_YEAR} AND r.nhs_number IS NULL"),
    block_on("postcode_std", "year_of_birth"),
    # Third-sector clients often give no date of birth at all: names and address are all there is.
    block_on("surname_phonetic", "postcode_std"),
    block_on("forename_phonetic", "postcode_std"),
    # Forename and surname swapped, and day and month of birth swapped, defeat every rule above. A swap of two
    # common names alone pairs strangers by the million (4.4M pairs at 1M people); every swapped pair the model
    # linked on the three generated profiles shared the year of birth or the postcode district, or lacked a date of
    # birth, so the swap needs one of those beside it.
    CustomRule(f"{_NAMES_SWAPPED} AND l.year_of_birth = r.year_of_birth"),
    CustomRule(f"{_NAMES_SWAPPED} AND l.postcode_district = r.postcode_district"),
    CustomRule(f"{_NAMES_SWAPPED} AND l.year_of_birth IS NULL"),
    CustomRule(f"{_NAMES_SWAPPED} AND r.year_of_birth IS NULL"),
    CustomRule(
        "l.surname_phonetic = r.surname_phonetic AND l.year_of_birth = r.year_of_birth "
        "AND day(l.date_of_birth) = month(r.date_of_birth) AND month(l.date_of_birth) = day(r.date_of_birth)"
    ),
)

# EM sessions: each fixes some comparisons (those in its rule) and estimates the others.
EM_BLOCKING_RULES = (
    block_on("forename_canonical", "surname_canonical"),
    block_on("date_of_birth", "postcode_district"),
)

# Near-certain rules whose matches, divided by all pairs and adjusted by the recall, estimate the prior.
PRIOR_DETERMINISTIC_RULES = (
    block_on("nhs_number", "date_of_birth"),
    block_on("forename_std", "surname_std", "date_of_birth"),
)

BLOCKING_RATIONALE = """\
Blocking rules for prediction, with the pairs each adds beyond the rules above it, counted exactly
(linkage.link.model.blocking_pair_counts, equal to splink.blocking_analysis) on the bench's synthetic
extracts of 100,000 and 1,000,000 people (153,719 and 1,534,971 records); `train` logs the same counts.
| # | rule | new pairs, 100k | new pairs, 1M | why |
|---|---|---|---|---|
| 1 | nhs_number | 48,161 | 477,641 | the identifier most sources carry; finds matches whose names or dates disagree |
| 2 | surname_phonetic + date_of_birth | 20,658 | 804,622 | NHS number missing (third sector, 40% of social care) |
| 3 | forename_phonetic + date_of_birth | 6,134 | 495,902 | surname changed (marriage) or mistyped beyond Soundex |
| 4-5 | canonical names + year_of_birth, one record without an NHS number | 6,868 | 600,387 | day or month of birth wrong; nicknames |
| 6 | postcode_std + year_of_birth | 23,765 | 244,984 | both names disagree but the address agrees |
| 7 | surname_phonetic + postcode_std | 199,328 | 2,002,584 | no date of birth at all (many third-sector clients) |
| 8 | forename_phonetic + postcode_std | 17,869 | 190,736 | as 7, with the surname changed or mistyped |
| 9-12 | forename/surname swapped + same year, same district, or a year missing | 945 | 104,612 | no other rule pairs these when the NHS number is missing |
| 13 | surname_phonetic + year + day/month swapped | 2,421 | 231,686 | swapped day and month with no NHS number |
Rules 7 and 8 were added after measuring the misses of the others at 10k people: 96 of the 200 missed
true pairs were third-sector records with no date of birth whose names and postcode agreed. Rules 4-5 and
9-12 were narrowed from canonical names + year and the swap alone (4.0M and 4.4M of 12.9M candidate pairs at
1M): the same links but one on the quality bench's profiles for 0.40x the pairs (README, Blocking rules).
"""


def build_settings(
    config: LinkageConfig, comparisons=COMPARISONS, prediction_rules=BLOCKING_RULES_FOR_PREDICTION
) -> SettingsCreator:
    """The model's settings: link_and_dedupe across the four sources (duplicates exist within sources too).

    comparisons and prediction_rules default to the full model; `linkage.link.fields.plan_model` narrows them to
    the fields a site's extract holds."""
    return SettingsCreator(
        link_type="link_and_dedupe",
        unique_id_column_name=UNIQUE_ID,
        source_dataset_column_name=SOURCE_DATASET,
        probability_two_random_records_match=config.probability_two_random_records_match or 1e-5,
        comparisons=list(comparisons),
        blocking_rules_to_generate_predictions=list(prediction_rules),
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
        additional_columns_to_retain=[],
        em_convergence=0.001,
        max_iterations=config.em_max_iterations,
    )
