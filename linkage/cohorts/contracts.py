"""Table contracts of the cohort zone, built from each declaration (its variables are its columns)."""

from __future__ import annotations

from linkage.cohorts.declaration import Declaration
from linkage.schemas import RUN_ID, TableContract, _cols

PERSON_COLUMNS = (
    ("person_id", "string", "Pseudonymous person id (as in pseudonymised/person)."),
    ("index_date", "date", "Index date the cohort was built at."),
    (
        "age_at_index",
        "int",
        "Completed years at the index date, from year and month of birth (a birthday in "
        "the index month counts as passed; unknown month = July).",
    ),
    ("age_band", "string", "Band of age_at_index (cohorts.age_band_starts)."),
    ("sex", "string", "M, F or null."),
    ("ethnic_group", "string", "White, Mixed, Asian, Black, Other or Unknown."),
    ("imd_quintile", "int", "IMD quintile, 1 = most deprived (from the decile)."),
    ("identified_in", "array<string>", "Sources holding evidence for a criterion the person meets."),
)

SUMMARY_COLUMNS = (
    ("cohort", "string", "Cohort name."),
    ("index_date", "date", "Index date the cohort was built at."),
    ("breakdown", "string", "age_band, sex, ethnic_group, imd_quintile, source, or a flag variable's name."),
    ("category", "string", "Value within the breakdown; Total is computed from unrounded counts."),
    ("count", "long", "Persons, after disclosure control: null when suppressed, otherwise rounded."),
    ("is_suppressed", "boolean", "Hidden by primary or secondary suppression."),
    RUN_ID,
)


def variable_types(declaration: Declaration) -> dict[str, str]:
    """Spark type of each declared variable, in declaration order."""
    types: dict[str, str] = {}
    for name, variable in declaration.variables.items():
        if variable.value_of:
            ref = variable.value_of
            criterion = declaration.criteria.get(ref)
            types[name] = criterion.value_type if criterion else types[ref]
        elif variable.earliest_of or variable.latest_of:
            types[name] = "date"
        elif variable.days_between:
            types[name] = "boolean" if variable.at_most is not None else "int"
        else:
            types[name] = "boolean"
    return types


def person_contract(declaration: Declaration) -> TableContract:
    variables = tuple(
        (name, kind, declaration.variables[name].description or f"Declared variable {name}.")
        for name, kind in variable_types(declaration).items()
    )
    return TableContract(
        "cohorts",
        f"cohort_{declaration.name}",
        f"Cohort {declaration.name} (person level): {declaration.description}",
        _cols(*PERSON_COLUMNS, *variables, RUN_ID),
    )


def summary_contract(declaration: Declaration) -> TableContract:
    return TableContract(
        "cohorts",
        f"cohort_{declaration.name}_summary",
        f"Cohort {declaration.name}: disclosure-controlled counts by breakdown.",
        _cols(*SUMMARY_COLUMNS),
    )
